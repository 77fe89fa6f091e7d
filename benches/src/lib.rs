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
