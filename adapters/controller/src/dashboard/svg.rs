//! A run's DAG as SVG, drawn on the server: the graph `c8s plan -o dot`
//! prints, one node per step (matrix combinations apart), laid out in
//! layers left to right (a step's layer is the longest chain of
//! dependencies before it), each node naming its step and its state in
//! words. Deterministic: the same graph gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::escape::escape;

/// One node: the step's id (its object name), what to show, its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The step's id.
    pub id: String,
    /// Its name as the pipeline says it.
    pub label: String,
    /// Its state (`Succeeded`, `Running`...).
    pub state: String,
}

/// The graph to draw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// The steps, in the order given.
    pub nodes: Vec<Node>,
    /// `(from, to)`: `to` depends on `from` (ids).
    pub edges: Vec<(String, String)>,
}

impl Graph {
    /// A graph of `(id, label, state)` nodes and `(from, to)` edges; edges
    /// naming an unknown node are left out.
    pub fn from_steps(
        nodes: impl IntoIterator<Item = (String, String, String)>,
        edges: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let nodes: Vec<Node> = nodes
            .into_iter()
            .map(|(id, label, state)| Node { id, label, state })
            .collect();
        let known = |id: &str| nodes.iter().any(|n| n.id == id);
        let edges = edges.into_iter().filter(|(a, b)| known(a) && known(b)).collect();
        Graph { nodes, edges }
    }

    /// Each node's layer: 0 without dependencies, else one more than its
    /// deepest dependency (edges that would close a cycle are ignored).
    fn layers(&self) -> BTreeMap<&str, usize> {
        let mut layer: BTreeMap<&str, usize> = self.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
        // Longest path by relaxation: at most one pass per node.
        for _ in 0..self.nodes.len() {
            let mut changed = false;
            for (from, to) in &self.edges {
                let next = layer.get(from.as_str()).copied().unwrap_or(0) + 1;
                if let Some(l) = layer.get_mut(to.as_str())
                    && *l < next
                    && next < self.nodes.len().max(1)
                {
                    *l = next;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        layer
    }
}

const NODE_W: usize = 190;
const NODE_H: usize = 44;
const GAP_X: usize = 60;
const GAP_Y: usize = 18;

fn fill(state: &str) -> &'static str {
    match state {
        "Succeeded" => "#e3f4e3",
        "Failed" => "#fbe3e3",
        "Running" => "#e1ecfa",
        _ => "#f0f0f0",
    }
}

/// The first `max` characters of `text`, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The graph as an `<svg>` element (with a `<title>` for screen readers).
pub fn dag_svg(graph: &Graph) -> String {
    let layers = graph.layers();
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut at: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for node in &graph.nodes {
        let layer = layers.get(node.id.as_str()).copied().unwrap_or(0);
        let row = rows.entry(layer).or_insert(0);
        at.insert(&node.id, (layer, *row));
        *row += 1;
    }
    let columns = rows.keys().max().map_or(0, |l| l + 1);
    let height_rows = rows.values().max().copied().unwrap_or(0);
    let width = columns * (NODE_W + GAP_X) + GAP_X;
    let height = height_rows * (NODE_H + GAP_Y) + GAP_Y;
    let position = |(layer, row): (usize, usize)| {
        (
            GAP_X / 2 + layer * (NODE_W + GAP_X),
            GAP_Y + row * (NODE_H + GAP_Y),
        )
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"dag\" role=\"img\" aria-labelledby=\"dag-title\" \
width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\"><title id=\"dag-title\">The run's steps and \
what each waits for</title><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#666\"/></marker></defs>"
    );
    for (from, to) in &graph.edges {
        let (Some(a), Some(b)) = (at.get(from.as_str()), at.get(to.as_str())) else {
            continue;
        };
        let ((x1, y1), (x2, y2)) = (position(*a), position(*b));
        let _ = write!(
            out,
            "<line class=\"edge\" data-from=\"{}\" data-to=\"{}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" \
stroke=\"#666\" marker-end=\"url(#arrow)\"/>",
            escape(from),
            escape(to),
            x1 + NODE_W,
            y1 + NODE_H / 2,
            x2,
            y2 + NODE_H / 2
        );
    }
    for node in &graph.nodes {
        let Some(place) = at.get(node.id.as_str()) else {
            continue;
        };
        let (x, y) = position(*place);
        // A failed step's border is dashed too: the state never rests on colour alone.
        let dash = if node.state == "Failed" {
            " stroke-dasharray=\"5 3\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<g class=\"node\" data-step=\"{id}\" data-state=\"{state}\"><title>{id}</title>\
<rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"{fill}\" stroke=\"#444\"{dash}/>\
<text x=\"{tx}\" y=\"{ty1}\">{label}</text><text x=\"{tx}\" y=\"{ty2}\">{state}</text></g>",
            id = escape(&node.id),
            state = escape(&node.state),
            fill = fill(&node.state),
            tx = x + 8,
            ty1 = y + 18,
            ty2 = y + 35,
            label = escape(&clip(&node.label, 26)),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        let node = |id: &str, state: &str| (id.to_owned(), id.to_owned(), state.to_owned());
        Graph::from_steps(
            [
                node("lint", "Succeeded"),
                node("unit", "Running"),
                node("build", "Pending"),
                node("publish", "Pending"),
            ],
            [
                ("lint".to_owned(), "build".to_owned()),
                ("unit".to_owned(), "build".to_owned()),
                ("build".to_owned(), "publish".to_owned()),
                ("ghost".to_owned(), "publish".to_owned()),
            ],
        )
    }

    #[test]
    fn steps_are_laid_out_in_layers_after_their_deepest_dependency() {
        let g = graph();
        let layers = g.layers();
        assert_eq!(
            layers.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
            [("build", 1), ("lint", 0), ("publish", 2), ("unit", 0)]
        );
        assert_eq!(g.edges.len(), 3, "the edge from an unknown step is left out");
    }

    #[test]
    fn the_svg_has_a_node_per_step_with_its_state_in_words_and_an_edge_per_dependency() {
        let svg = dag_svg(&graph());
        assert_eq!(svg.matches("<g class=\"node\"").count(), 4);
        assert_eq!(svg.matches("<line class=\"edge\"").count(), 3);
        assert!(svg.contains("data-step=\"unit\" data-state=\"Running\""), "{svg}");
        assert!(svg.contains(">Running</text>"), "{svg}");
        assert!(svg.contains("<title id=\"dag-title\">"));
        assert_eq!(svg, dag_svg(&graph()), "deterministic");
    }

    #[test]
    fn a_cycle_does_not_hang_the_layout() {
        let node = |id: &str| (id.to_owned(), id.to_owned(), "Pending".to_owned());
        let g = Graph::from_steps(
            [node("a"), node("b")],
            [("a".to_owned(), "b".to_owned()), ("b".to_owned(), "a".to_owned())],
        );
        assert_eq!(dag_svg(&g).matches("<g class=\"node\"").count(), 2);
    }
}
