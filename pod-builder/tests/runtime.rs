//! The runtime check: rendered pods run under kubelet rules on this machine
//! (`common/kubelet`), every example and every script c8s emits.

mod common;
#[path = "common/kubelet/mod.rs"]
mod kubelet;

use c8s_pod_builder::model::{PlanIdentity, TaskPlan};
use c8s_pod_builder::{RunContext, render_pod};
use kubelet::{Kubelet, Phase};

#[test]
fn smoke() {
    let mut plan = TaskPlan::new(PlanIdentity::new("orders", "unit"), "golang:1.23");
    plan.command = vec![
        "sh".into(),
        "-ec".into(),
        "id; echo pid $$; echo HOME=$HOME; ls -ld /workspace; cat /proc/1/cmdline | tr '\\0' ' '; echo"
            .into(),
    ];
    let ctx = RunContext::new("run-1", 1);
    let pod = render_pod(&plan, &ctx).expect("render");
    let run = Kubelet::default().run(&pod);
    println!("{}", run.logs());
    assert_eq!(run.phase, Phase::Succeeded, "{}", run.logs());
}
