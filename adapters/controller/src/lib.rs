//! c8s in the cluster: the `Pipeline`, `PipelineRun` and
//! `RepositoryConnection` resources ([`crd`]), the controller that drives
//! runs on the same scheduler as `c8s run`, and webhook triggers.

pub mod crd;
