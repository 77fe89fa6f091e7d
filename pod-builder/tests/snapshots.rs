//! insta YAML snapshots of every example, both sidecar modes, Pod and Job —
//! reviewed like code — plus round-trips and the security profile of each.

mod common;

use c8s_pod_builder::{
    Object, SecurityProfile, check_restricted, pod_security_level, to_canonical_json, to_canonical_yaml,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

#[test]
fn snapshots() {
    for (name, object) in common::rendered() {
        let yaml = to_canonical_yaml(&object).expect("serialise");
        insta::assert_snapshot!(name.clone(), yaml);
    }
}

#[test]
fn yaml_and_json_round_trip() {
    for (name, object) in common::rendered() {
        let yaml = to_canonical_yaml(&object).expect("yaml");
        let json = to_canonical_json(&object).expect("json");
        match &object {
            Object::Pod(pod) => {
                let back: Pod = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&back, pod.as_ref(), "{name}: yaml");
                let back: Pod = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&back, pod.as_ref(), "{name}: json");
            }
            Object::Job(job) => {
                let back: Job = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&back, job.as_ref(), "{name}: yaml");
                let back: Job = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&back, job.as_ref(), "{name}: json");
            }
        }
    }
}

#[test]
fn every_container_is_restricted_unless_it_opted_out() {
    for (name, object) in common::rendered() {
        let spec = common::pod_spec(&object);
        if name.starts_with("root-") {
            assert_eq!(
                pod_security_level(spec),
                Some(SecurityProfile::Baseline),
                "{name}"
            );
            let problems = check_restricted(spec);
            assert!(
                problems.iter().all(|p| p.contains("(main)")),
                "{name}: {problems:?}"
            );
        } else {
            assert_eq!(check_restricted(spec), Vec::<String>::new(), "{name}");
        }
    }
}
