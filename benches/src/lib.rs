//! Benchmarks live in `benches/`; this library only shares input generators between them.

/// A sidecar file with `n` sidecars, each with env, ports, resources and readiness.
pub fn sidecar_file(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "- name: svc-{i}\n  image: registry.example.com/team/svc-{i}:1.{i}\n  env:\n    - name: MODE\n      value: test\n    - name: TOKEN\n      secretKeyRef: {{ name: ci-secrets, key: token-{i} }}\n  ports:\n    - containerPort: {port}\n      name: http\n  resources:\n    requests: {{ cpu: 100m, memory: 64Mi }}\n    limits: {{ cpu: 200m, memory: 128Mi }}\n  readiness:\n    httpGet: {{ path: /healthz, port: http }}\n    periodSeconds: 2\n",
            port = 1024 + i
        ));
    }
    text
}

/// A `.c8s.yaml` pipeline with `n` steps: each depends on up to two earlier
/// steps, has commands, env, a secret, resources, a timeout and caches; every
/// tenth step takes an input from its first dependency and every fifth has an
/// inline sidecar.
pub fn pipeline_file(n: usize) -> String {
    let mut text = String::from(
        "name: bench\nrepository: https://example.com/bench.git\nbranches: [main, \"release/*\"]\ntimeout: 2h\nsteps:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "  - name: step-{i}\n    image: registry.example.com/team/builder:1.{i}\n    commands:\n      - make build-{i}\n      - make test-{i}\n    env: {{ LEVEL: debug, INDEX: \"{i}\" }}\n    secrets:\n      - {{ secretRef: ci-secrets, key: token-{i}, envVar: TOKEN }}\n    resources:\n      requests: {{ cpu: 100m, memory: 128Mi }}\n      limits: {{ cpu: \"1\", memory: 512Mi }}\n    timeout: 10m\n    caches: [.cache/{i}]\n    outputs: [out-{i}]\n"
        ));
        if i > 0 {
            let a = (i * 7919) % i;
            let b = (i * 104_729 + 13) % i;
            if a == b {
                text.push_str(&format!("    dependsOn: [step-{a}]\n"));
            } else {
                text.push_str(&format!("    dependsOn: [step-{a}, step-{b}]\n"));
            }
            if i % 10 == 0 {
                text.push_str(&format!("    inputs: [{{ step: step-{a}, output: out-{a} }}]\n"));
            }
        }
        if i % 5 == 0 {
            text.push_str(&format!(
                "    sidecars:\n      - name: db\n        image: postgres:16\n        env: [{{ name: POSTGRES_PASSWORD, value: test-{i} }}]\n        ports: [{{ containerPort: 5432 }}]\n        resources:\n          requests: {{ cpu: 100m, memory: 256Mi }}\n"
            ));
        }
    }
    text
}
