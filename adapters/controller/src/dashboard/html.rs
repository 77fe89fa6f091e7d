//! The dashboard's pages, rendered on the server from the runs as the API
//! server has them: pure functions of their input, so every page is tested
//! without a server. Every value from the cluster (names, branches, commits,
//! messages, log lines) goes through [`escape`]; the pages' only script
//! replaces a live region with HTML this module rendered, or appends log
//! text as text.
//!
//! Accessibility: every page has a `<title>`, a `<header>`, a `<main>` and
//! a `<nav>` landmark; a state is always written as a word beside its
//! symbol and colour (never colour alone); the static parts work without
//! script, which only keeps them current.

use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;

use crate::crd::{PipelineRun, RunPhase, StepPhase, StepRunStatus};

pub use super::escape::{escape, segment};
use super::svg::{Graph, dag_svg};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a}\
header,main,nav{padding:0.5rem 1.5rem}header{background:#243447;color:#fff}\
header a{color:#fff}table{border-collapse:collapse}th,td{text-align:left;padding:0.3rem 0.8rem;border-bottom:1px solid #ddd}\
.state{font-weight:600}.Succeeded{color:#176117}.Failed{color:#a11}.Running{color:#0b5cad}\
.Pending,.Skipped,.Cancelled{color:#555}pre{background:#f6f6f6;padding:1rem;overflow:auto}\
svg text{font-size:12px;font-family:system-ui,sans-serif}";

/// A whole page: `title`, the navigation, and `body` in `<main>`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\">\
<title>{title} · c8s</title><style>{STYLE}</style></head>\
<body><header><strong>c8s</strong> dashboard</header>\
<nav aria-label=\"main\"><a href=\"/\">Runs</a></nav>\
<main>{body}</main></body></html>\n",
        title = escape(title)
    )
}

/// The symbol written before a state's word (the word is always there too).
fn symbol(state: &str) -> &'static str {
    match state {
        "Succeeded" => "✔",
        "Failed" => "✘",
        "Running" => "▶",
        "Cancelled" => "■",
        "Skipped" => "↷",
        _ => "…",
    }
}

/// A state as text: its symbol (hidden from screen readers) and its word.
pub fn state_badge(state: &str) -> String {
    let state = escape(state);
    format!(
        "<span class=\"state {state}\"><span aria-hidden=\"true\">{}</span> {state}</span>",
        symbol(&state)
    )
}

/// How long from `start` to `end` (or `now`), as `1m 05s`.
pub fn duration(start: Option<&str>, end: Option<&str>, now: Timestamp) -> String {
    let parse = |t: Option<&str>| t.and_then(|t| t.parse::<Timestamp>().ok());
    let Some(start) = parse(start) else {
        return String::new();
    };
    let end = parse(end).unwrap_or(now);
    let secs = end.as_second().saturating_sub(start.as_second()).max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn run_phase(run: &PipelineRun) -> RunPhase {
    run.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// The table of runs (the live region of the runs page).
pub fn runs_table(runs: &[PipelineRun], now: Timestamp) -> String {
    if runs.is_empty() {
        return "<p>No runs yet.</p>".into();
    }
    let mut out = String::from(
        "<table><caption>Pipeline runs, newest first</caption><thead><tr><th scope=\"col\">Run</th>\
<th scope=\"col\">Pipeline</th><th scope=\"col\">Phase</th><th scope=\"col\">Duration</th>\
<th scope=\"col\">Commit</th><th scope=\"col\">Branch</th><th scope=\"col\">Trigger</th></tr></thead><tbody>",
    );
    for run in runs {
        let ns = run.metadata.namespace.clone().unwrap_or_default();
        let name = run.metadata.name.clone().unwrap_or_default();
        let status = run.status.clone().unwrap_or_default();
        let commit: String = run.spec.commit.chars().take(12).collect();
        let _ = write!(
            out,
            "<tr data-run=\"{id}\"><td><a href=\"/runs/{ns_seg}/{name_seg}\">{ns}/{name}</a></td><td>{pipeline}</td>\
<td>{phase}</td><td>{duration}</td><td><code>{commit}</code></td><td>{branch}</td><td>{trigger}</td></tr>",
            id = escape(&format!("{ns}/{name}")),
            ns_seg = segment(&ns),
            name_seg = segment(&name),
            ns = escape(&ns),
            name = escape(&name),
            pipeline = escape(&status.pipeline),
            phase = state_badge(run_phase(run).as_str()),
            duration = duration(
                status.start_time.as_deref(),
                status.completion_time.as_deref(),
                now
            ),
            commit = escape(&commit),
            branch = escape(&run.spec.branch),
            trigger = escape(&run.spec.triggered_by),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The pipelines (namespace, name): each with its number of runs and its
/// latest run (`runs` is newest first), pipelines without runs too.
pub fn pipelines_table(pipelines: &[(String, String)], runs: &[PipelineRun]) -> String {
    let mut all: std::collections::BTreeSet<(String, String)> = pipelines.iter().cloned().collect();
    let pipeline_of = |run: &PipelineRun| {
        (
            run.metadata.namespace.clone().unwrap_or_default(),
            run.status
                .as_ref()
                .map(|s| s.pipeline.clone())
                .unwrap_or_default(),
        )
    };
    all.extend(runs.iter().map(pipeline_of).filter(|(_, name)| !name.is_empty()));
    if all.is_empty() {
        return "<p>No pipelines yet.</p>".into();
    }
    let mut out = String::from(
        "<table><caption>Pipelines</caption><thead><tr><th scope=\"col\">Pipeline</th>\
<th scope=\"col\">Runs</th><th scope=\"col\">Latest run</th></tr></thead><tbody>",
    );
    for (ns, name) in &all {
        let of_it: Vec<&PipelineRun> = runs
            .iter()
            .filter(|r| pipeline_of(r) == (ns.clone(), name.clone()))
            .collect();
        let latest = of_it.first().map_or_else(String::new, |run| {
            let run_name = run.metadata.name.clone().unwrap_or_default();
            format!(
                "<a href=\"/runs/{}/{}\">{}</a> {}",
                segment(ns),
                segment(&run_name),
                escape(&run_name),
                state_badge(run_phase(run).as_str())
            )
        });
        let _ = write!(
            out,
            "<tr data-pipeline=\"{id}\"><td>{id}</td><td>{count}</td><td>{latest}</td></tr>",
            id = escape(&format!("{ns}/{name}")),
            count = of_it.len(),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The live region of the runs page: the pipelines, then the runs.
pub fn runs_live(pipelines: &[(String, String)], runs: &[PipelineRun], now: Timestamp) -> String {
    format!(
        "<section aria-labelledby=\"pipelines-h\"><h2 id=\"pipelines-h\">Pipelines</h2>{}</section>\
<section aria-labelledby=\"runs-h\"><h2 id=\"runs-h\">Runs</h2>{}</section>",
        pipelines_table(pipelines, runs),
        runs_table(runs, now)
    )
}

/// The script that keeps a live region (`#live`) current from the
/// server-sent events at `source`: each `update` event is HTML this module
/// rendered, escaped.
fn live_script(source: &str) -> String {
    format!(
        "<script>(function(){{var es=new EventSource({source:?});\
var last=null;es.addEventListener('update',function(e){{if(e.data!==last){{last=e.data;document.getElementById('live').innerHTML=e.data;}}}});}})();</script>"
    )
}

/// The runs page: the pipelines and the runs.
pub fn runs_page(pipelines: &[(String, String)], runs: &[PipelineRun], now: Timestamp) -> String {
    let body = format!(
        "<h1>Pipelines and runs</h1><div id=\"live\" aria-live=\"polite\">{}</div>{}",
        runs_live(pipelines, runs, now),
        live_script("/live")
    );
    page("Runs", &body)
}

/// A step as the run page shows it: its status and the name to show.
pub struct StepView<'a> {
    /// The step's status.
    pub status: &'a StepRunStatus,
    /// The pipeline's name for it (with its matrix combination).
    pub label: String,
}

/// The live region of a run page: the run's phase, its DAG and its steps.
pub fn run_live(run: &PipelineRun, steps: &[StepView<'_>], graph: &Graph, now: Timestamp) -> String {
    let ns = run.metadata.namespace.clone().unwrap_or_default();
    let name = run.metadata.name.clone().unwrap_or_default();
    let status = run.status.clone().unwrap_or_default();
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::SUCCEEDED)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let mut out = format!(
        "<p id=\"phase\">Phase: {} · duration {}</p>",
        state_badge(run_phase(run).as_str()),
        duration(
            status.start_time.as_deref(),
            status.completion_time.as_deref(),
            now
        )
    );
    if !message.is_empty() {
        let _ = write!(out, "<p id=\"message\">{}</p>", escape(&message));
    }
    let _ = write!(
        out,
        "<section aria-labelledby=\"dag-h\"><h2 id=\"dag-h\">Graph</h2>{}</section>",
        dag_svg(graph)
    );
    out.push_str(
        "<section aria-labelledby=\"steps-h\"><h2 id=\"steps-h\">Steps</h2><table><thead><tr>\
<th scope=\"col\">Step</th><th scope=\"col\">State</th><th scope=\"col\">Attempts</th>\
<th scope=\"col\">Started</th><th scope=\"col\">Duration</th><th scope=\"col\">Exit</th>\
<th scope=\"col\">Logs</th></tr></thead><tbody>",
    );
    for step in steps {
        let s = step.status;
        let phase = format!("{:?}", s.phase);
        let logs = if s.pod.is_some() || !s.archived_logs.is_empty() {
            format!(
                "<a href=\"/runs/{}/{}/steps/{}/log\">log</a>",
                segment(&ns),
                segment(&name),
                segment(&s.name)
            )
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr id=\"step-{id}\" data-step=\"{id}\"><th scope=\"row\" title=\"{id}\">{label}</th><td>{state}</td>\
<td>{attempts}</td><td>{started}</td><td>{duration}</td><td>{exit}</td><td>{logs}</td></tr>",
            id = escape(&s.name),
            label = escape(&step.label),
            state = state_badge(&phase),
            attempts = s.attempt + u32::from(s.phase != StepPhase::Pending),
            started = escape(s.start_time.as_deref().unwrap_or("")),
            duration = duration(s.start_time.as_deref(), s.completion_time.as_deref(), now),
            exit = s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        );
        if !s.message.is_empty() {
            let _ = write!(
                out,
                "<tr><td></td><td colspan=\"6\">{}</td></tr>",
                escape(&s.message)
            );
        }
    }
    out.push_str("</tbody></table></section>");
    out
}

/// A run's page.
pub fn run_page(run: &PipelineRun, steps: &[StepView<'_>], graph: &Graph, now: Timestamp) -> String {
    let ns = run.metadata.namespace.clone().unwrap_or_default();
    let name = run.metadata.name.clone().unwrap_or_default();
    let body = format!(
        "<h1>Run {ns}/{name_text}</h1><dl><dt>Commit</dt><dd><code>{commit}</code></dd>\
<dt>Branch</dt><dd>{branch}</dd><dt>Trigger</dt><dd>{trigger}</dd></dl>\
<div id=\"live\" aria-live=\"polite\">{live}</div>{script}",
        ns = escape(&ns),
        name_text = escape(&name),
        commit = escape(&run.spec.commit),
        branch = escape(&run.spec.branch),
        trigger = escape(&run.spec.triggered_by),
        live = run_live(run, steps, graph, now),
        script = live_script(&format!("/runs/{}/{}/live", segment(&ns), segment(&name))),
    );
    page(&format!("Run {ns}/{name}"), &body)
}

/// A step's log page: `log` is masked text (or why there is none), and
/// `follow` the URL of its live stream while the step runs.
pub fn log_page(run: &str, step: &str, source: &str, log: &str, follow: Option<&str>) -> String {
    let script = follow.map_or_else(String::new, |url| {
        format!(
            "<script>(function(){{var es=new EventSource({url:?});var pre=document.getElementById('log');\
es.addEventListener('log',function(e){{pre.appendChild(document.createTextNode(e.data+'\\n'));}});\
es.addEventListener('end',function(){{es.close();}});}})();</script>"
        )
    });
    let body = format!(
        "<h1>Log of {step}</h1><p>Run {run} · {source}</p><pre id=\"log\">{log}</pre>{script}",
        step = escape(step),
        run = escape(run),
        source = escape(source),
        log = escape(log),
    );
    page(&format!("Log of {step}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PipelineRunSpec, PipelineRunStatus};

    const HOSTILE: &str = "<script>alert('x')</script>\"&";

    fn run() -> PipelineRun {
        let mut run = PipelineRun::new(
            "shop-b7",
            PipelineRunSpec {
                branch: HOSTILE.into(),
                commit: "0123abcd0123abcd".into(),
                triggered_by: "push by <img src=x onerror=alert(1)>".into(),
                ..PipelineRunSpec::default()
            },
        );
        run.metadata.namespace = Some("team-a".into());
        run.status = Some(PipelineRunStatus {
            phase: RunPhase::Running,
            pipeline: HOSTILE.into(),
            start_time: Some("2026-12-05T10:00:00Z".into()),
            ..PipelineRunStatus::default()
        });
        run
    }

    fn now() -> Timestamp {
        "2026-12-05T10:01:05Z".parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// No tag or attribute from a value: every `<` of the page is one this
    /// module wrote.
    fn assert_no_injection(html: &str) {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("onerror=alert(1)>"), "{html}");
    }

    #[test]
    fn values_are_escaped_as_text_and_attributes() {
        assert_eq!(
            escape(HOSTILE),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
        );
        assert_eq!(segment("a b/<c>"), "a%20b%2F%3Cc%3E");
        let html = runs_page(&[], &[run()], now());
        assert_no_injection(&html);
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)"), "{html}");
    }

    #[test]
    fn a_hostile_step_name_message_and_log_line_stay_text() {
        let status = StepRunStatus {
            name: HOSTILE.into(),
            phase: StepPhase::Failed,
            message: "<img src=x onerror=alert(1)>".into(),
            pod: Some("p".into()),
            ..StepRunStatus::default()
        };
        let steps = [StepView {
            status: &status,
            label: HOSTILE.into(),
        }];
        let graph = Graph::from_steps(
            [(HOSTILE.to_owned(), HOSTILE.to_owned(), "Failed".to_owned())],
            [],
        );
        let html = run_page(&run(), &steps, &graph, now());
        assert_no_injection(&html);
        let log = log_page("r", HOSTILE, "archive", "line <script>alert(1)</script>\n", None);
        assert_no_injection(&log);
        assert!(log.contains("line &lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn pages_have_a_title_landmarks_and_states_in_words() {
        let html = runs_page(&[], &[run()], now());
        for part in [
            "<title>Runs · c8s</title>",
            "<header>",
            "<main>",
            "<nav",
            "lang=\"en\"",
        ] {
            assert!(html.contains(part), "{part}: {html}");
        }
        // The run's pipeline is listed with its latest run.
        assert!(html.contains("<caption>Pipelines</caption>"), "{html}");
        assert!(
            html.contains("<td>1</td><td><a href=\"/runs/team-a/shop-b7\">shop-b7</a>"),
            "{html}"
        );
        // A pipeline without runs is listed too.
        let empty = pipelines_table(&[("team-b".into(), "docs".into())], &[]);
        assert!(
            empty.contains("<td>team-b/docs</td><td>0</td><td></td>"),
            "{empty}"
        );
        // The phase is a word, not a colour alone.
        assert!(html.contains("</span> Running</span>"), "{html}");
        assert!(html.contains("<td>1m 05s</td>"), "{html}");
    }
}
