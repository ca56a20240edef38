//! The functional ANOVA of one tree: how much of its variance each feature explains alone.
//!
//! A regression tree is a piecewise-constant function over the search space: its leaves cut
//! the unit box into smaller boxes, each with a constant prediction. Over the uniform measure
//! of the box (the encoding in [`super::encode`] chose it), the tree's mean is
//! `m = Σ vol(leaf) · value(leaf)` and its variance `V = Σ vol(leaf) · (value(leaf) − m)²`.
//! The *marginal* of feature `i`, the tree's prediction averaged over every other feature with
//! `x_i` held fixed, is `a_i(x_i) = Σ value(leaf) · vol₋ᵢ(leaf)` over the leaves whose box
//! contains `x_i`, where `vol₋ᵢ` is the leaf's volume without its `i` side. Its variance
//! `V_i = ∫ (a_i − m)²` is the main effect of `i`, and `V_i / V` the share of the tree's
//! variance it explains (Hutter, Hoos and Leyton-Brown 2014, eq. 2–4).
//!
//! Everything is exact and linear in the tree's size. Every threshold of feature `i` lies on
//! one grid, the midpoints between the feature's distinct values (see [`super::forest`]), so
//! `a_i` is constant on the cells of that grid, and a leaf adds its term to the contiguous run
//! of cells its box covers: a difference array takes each leaf in O(1) per feature, and one
//! prefix sum per feature turns it into `a_i`. A categorical feature's cells are its choices,
//! each weighing `1 / k`, and a leaf covers the subset of choices left by the splits above it.
//! The leaves' boxes come from one depth-first walk that narrows the box on the way down and
//! restores it on the way up, with an explicit stack, so a deep tree cannot overflow the call
//! stack. Optuna's implementation walks the tree again for every cell of every feature; this
//! one walks it once for all features.

use super::encode::Kind;
use super::forest::{Node, Tree};

/// One step of the depth-first walk.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Process a node.
    Visit(usize),
    /// Narrow the box to the `left` (or right) side of a split node.
    Narrow { node: usize, left: bool },
    /// Undo the matching `Narrow`.
    Widen { node: usize, left: bool },
}

/// Decomposes trees, reusing its buffers from tree to tree.
#[derive(Debug)]
pub(super) struct Decomposition<'a> {
    kinds: &'a [Kind],
    /// Per feature: the cell edges of a numeric feature ([`super::forest::Dataset::edges`]).
    edges: &'a [Vec<f64>],
    /// Per feature: the difference array (numeric, by edge) or the marginal sums (categorical,
    /// by choice).
    sums: Vec<Vec<f64>>,
    /// Per numeric feature: the current box as edge indices `low..high`.
    low: Vec<usize>,
    high: Vec<usize>,
    /// Per categorical feature and choice: how many splits above exclude it from the box.
    excluded: Vec<Vec<u32>>,
    /// Per categorical feature: how many choices the box holds.
    included: Vec<usize>,
    /// Saved box sides for `Widen`.
    saved: Vec<usize>,
    steps: Vec<Step>,
    /// Each leaf's volume and value.
    leaves: Vec<(f64, f64)>,
    /// Per feature: the box's width, and products of widths before and after it.
    widths: Vec<f64>,
    before: Vec<f64>,
    after: Vec<f64>,
}

impl<'a> Decomposition<'a> {
    /// A decomposition for features of `kinds`, numeric ones cut on `edges`.
    pub fn new(kinds: &'a [Kind], edges: &'a [Vec<f64>]) -> Decomposition<'a> {
        let features = kinds.len();
        Decomposition {
            kinds,
            edges,
            sums: vec![Vec::new(); features],
            low: vec![0; features],
            high: vec![0; features],
            excluded: kinds
                .iter()
                .map(|kind| match kind {
                    Kind::Categorical { choices } => vec![0; *choices],
                    Kind::Numeric => Vec::new(),
                })
                .collect(),
            included: vec![0; features],
            saved: Vec::new(),
            steps: Vec::new(),
            leaves: Vec::new(),
            widths: vec![1.0; features],
            before: vec![1.0; features + 1],
            after: vec![1.0; features + 1],
        }
    }

    /// Writes each feature's share `V_i / V` of `tree`'s variance into `shares` (one per
    /// feature) and returns `V`. Returns 0 and leaves `shares` alone when the tree is constant
    /// over the box.
    pub fn main_effects(&mut self, tree: &Tree, shares: &mut [f64]) -> f64 {
        self.prepare();
        self.walk(tree);

        let total_volume: f64 = self.leaves.iter().map(|(volume, _)| volume).sum();
        if total_volume <= 0.0 {
            return 0.0;
        }
        let mean = self
            .leaves
            .iter()
            .map(|(volume, value)| volume * value)
            .sum::<f64>()
            / total_volume;
        let variance = self
            .leaves
            .iter()
            .map(|(volume, value)| volume * (value - mean).powi(2))
            .sum::<f64>()
            / total_volume;
        if variance <= 0.0 {
            return 0.0;
        }
        for (feature, share) in shares.iter_mut().enumerate().take(self.kinds.len()) {
            let sums = &self.sums[feature];
            let marginal_variance = match self.kinds[feature] {
                Kind::Numeric => {
                    let edges = &self.edges[feature];
                    let mut marginal = 0.0;
                    let mut sum = 0.0;
                    for (cell, edge) in edges.windows(2).enumerate() {
                        marginal += sums[cell];
                        sum += (edge[1] - edge[0]) * (marginal - mean).powi(2);
                    }
                    sum
                }
                Kind::Categorical { choices } => {
                    sums.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / choices as f64
                }
            };
            *share = (marginal_variance / total_volume / variance).clamp(0.0, 1.0);
        }
        variance
    }

    /// Resets the box to the whole space and clears the sums.
    fn prepare(&mut self) {
        for (feature, kind) in self.kinds.iter().enumerate() {
            let cells = match kind {
                Kind::Numeric => {
                    let cells = self.edges[feature].len().saturating_sub(1);
                    self.low[feature] = 0;
                    self.high[feature] = cells;
                    cells + 1
                }
                Kind::Categorical { choices } => {
                    self.excluded[feature].fill(0);
                    self.included[feature] = *choices;
                    *choices
                }
            };
            self.sums[feature].clear();
            self.sums[feature].resize(cells, 0.0);
            self.update_width(feature);
        }
        self.leaves.clear();
        self.saved.clear();
    }

    /// Walks `tree` depth first, adding every leaf to the marginal sums.
    fn walk(&mut self, tree: &Tree) {
        self.steps.clear();
        self.steps.push(Step::Visit(0));
        while let Some(step) = self.steps.pop() {
            match step {
                Step::Visit(node) => match tree.nodes.get(node) {
                    Some(Node::Leaf { value }) => self.add_leaf(*value),
                    Some(
                        Node::Numeric { left, right, .. } | Node::Categorical { left, right, .. },
                    ) => {
                        // Popped in reverse: narrow left, visit, widen, then the same right.
                        self.steps.extend([
                            Step::Widen { node, left: false },
                            Step::Visit(*right),
                            Step::Narrow { node, left: false },
                            Step::Widen { node, left: true },
                            Step::Visit(*left),
                            Step::Narrow { node, left: true },
                        ]);
                    }
                    None => {}
                },
                Step::Narrow { node, left } => self.narrow(tree, node, left),
                Step::Widen { node, left } => self.widen(tree, node, left),
            }
        }
    }

    /// Narrows the box to one side of split `node`.
    fn narrow(&mut self, tree: &Tree, node: usize, left: bool) {
        match tree.nodes.get(node) {
            Some(&Node::Numeric { feature, cut, .. }) => {
                let edge = cut as usize;
                if left {
                    self.saved.push(self.high[feature]);
                    self.high[feature] = edge.clamp(self.low[feature], self.high[feature]);
                } else {
                    self.saved.push(self.low[feature]);
                    self.low[feature] = edge.clamp(self.low[feature], self.high[feature]);
                }
                self.update_width(feature);
            }
            Some(&Node::Categorical {
                feature, subset, ..
            }) => {
                for (choice, excluded) in self.excluded[feature].iter_mut().enumerate() {
                    if tree.contains(subset, choice) != left {
                        *excluded += 1;
                        if *excluded == 1 {
                            self.included[feature] -= 1;
                        }
                    }
                }
                self.update_width(feature);
            }
            _ => {}
        }
    }

    /// Undoes [`Decomposition::narrow`] of the same side of the same node.
    fn widen(&mut self, tree: &Tree, node: usize, left: bool) {
        match tree.nodes.get(node) {
            Some(&Node::Numeric { feature, .. }) => {
                let side = if left {
                    &mut self.high[feature]
                } else {
                    &mut self.low[feature]
                };
                if let Some(saved) = self.saved.pop() {
                    *side = saved;
                }
                self.update_width(feature);
            }
            Some(&Node::Categorical {
                feature, subset, ..
            }) => {
                for (choice, excluded) in self.excluded[feature].iter_mut().enumerate() {
                    if tree.contains(subset, choice) != left {
                        *excluded -= 1;
                        if *excluded == 0 {
                            self.included[feature] += 1;
                        }
                    }
                }
                self.update_width(feature);
            }
            _ => {}
        }
    }

    /// Recomputes the box's width along `feature` after a change of its sides.
    fn update_width(&mut self, feature: usize) {
        self.widths[feature] = match self.kinds[feature] {
            Kind::Numeric => {
                let edges = &self.edges[feature];
                edges[self.high[feature]] - edges[self.low[feature]]
            }
            Kind::Categorical { choices } => self.included[feature] as f64 / choices as f64,
        };
    }

    /// Adds a leaf with the current box and `value` to the marginal sums.
    fn add_leaf(&mut self, value: f64) {
        let features = self.kinds.len();
        // Products of the widths before and after each feature: the volume without one side
        // is before[i] * after[i + 1], with no division by a width that may be tiny.
        for feature in 0..features {
            self.before[feature + 1] = self.before[feature] * self.widths[feature];
        }
        for feature in (0..features).rev() {
            self.after[feature] = self.after[feature + 1] * self.widths[feature];
        }
        let volume = self.before[features];
        if volume <= 0.0 {
            return;
        }
        self.leaves.push((volume, value));
        for feature in 0..features {
            let term = value * self.before[feature] * self.after[feature + 1];
            let sums = &mut self.sums[feature];
            match self.kinds[feature] {
                Kind::Numeric => {
                    sums[self.low[feature]] += term;
                    sums[self.high[feature]] -= term;
                }
                Kind::Categorical { .. } => {
                    for (sum, excluded) in sums.iter_mut().zip(&self.excluded[feature]) {
                        if *excluded == 0 {
                            *sum += term;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(feature: usize, cut: u32, left: usize, right: usize) -> Node {
        Node::Numeric {
            feature,
            cut,
            left,
            right,
        }
    }

    fn leaf(value: f64) -> Node {
        Node::Leaf { value }
    }

    #[test]
    fn a_single_split_explains_everything() {
        let tree = Tree {
            nodes: vec![numeric(0, 1, 1, 2), leaf(0.0), leaf(1.0)],
            subsets: Vec::new(),
        };
        let edges = [vec![0.0, 0.5, 1.0], vec![0.0, 0.3, 1.0]];
        let mut decomposition = Decomposition::new(&[Kind::Numeric, Kind::Numeric], &edges);
        let mut shares = [f64::NAN; 2];
        let variance = decomposition.main_effects(&tree, &mut shares);
        assert!((variance - 0.25).abs() < 1e-15);
        assert_eq!(shares, [1.0, 0.0]);
    }

    #[test]
    fn an_interaction_is_split_by_hand_computed_shares() {
        // f = 4 when x0 > 0.5 and x1 <= 0.25, else 0: mean 0.5, variance 16/8 - 1/4 = 1.75.
        // Marginal of x0: 0 or 1 (variance 0.25); of x1: 2 or 0 with weights 1/4, 3/4
        // (variance 0.75). The rest, 0.75, is the interaction.
        let tree = Tree {
            nodes: vec![
                numeric(0, 2, 1, 2),
                leaf(0.0),
                numeric(1, 1, 3, 4),
                leaf(4.0),
                leaf(0.0),
            ],
            subsets: Vec::new(),
        };
        // Feature 0 has a cell edge at 0.2 that this tree does not cut at.
        let edges = [vec![0.0, 0.2, 0.5, 1.0], vec![0.0, 0.25, 1.0]];
        let mut decomposition = Decomposition::new(&[Kind::Numeric, Kind::Numeric], &edges);
        let mut shares = [0.0; 2];
        let variance = decomposition.main_effects(&tree, &mut shares);
        assert!((variance - 1.75).abs() < 1e-12, "{variance}");
        assert!((shares[0] - 0.25 / 1.75).abs() < 1e-12, "{shares:?}");
        assert!((shares[1] - 0.75 / 1.75).abs() < 1e-12, "{shares:?}");
        // The same buffers give the same answer for the next tree.
        let again = decomposition.main_effects(&tree, &mut shares);
        assert_eq!(again, variance);
    }

    #[test]
    fn categorical_subsets_weigh_each_choice_equally() {
        // Choice 0 of 3 goes left (value 3); choices 1 and 2 go right, where x0 <= 0.5 gives
        // 0 and x0 > 0.5 gives 3. Three boxes of volume 1/3 with values 3, 0, 3: mean 2,
        // variance 6 - 4 = 2. Marginal of the choice: 3, 1.5, 1.5, variance
        // (1 + 0.25 + 0.25) / 3 = 0.5. Marginal of x0: 1 below 0.5, 3 above, variance 1.
        let tree = Tree {
            nodes: vec![
                Node::Categorical {
                    feature: 1,
                    subset: 0,
                    left: 1,
                    right: 2,
                },
                leaf(3.0),
                numeric(0, 1, 3, 4),
                leaf(0.0),
                leaf(3.0),
            ],
            subsets: vec![0b001],
        };
        let kinds = [Kind::Numeric, Kind::Categorical { choices: 3 }];
        let edges = [vec![0.0, 0.5, 1.0], vec![]];
        let mut decomposition = Decomposition::new(&kinds, &edges);
        let mut shares = [0.0; 2];
        let variance = decomposition.main_effects(&tree, &mut shares);
        assert!((variance - 2.0).abs() < 1e-12, "{variance}");
        assert!((shares[0] - 0.5).abs() < 1e-12, "{shares:?}");
        assert!((shares[1] - 0.25).abs() < 1e-12, "{shares:?}");
    }

    /// The leaf value of the cell with keys `keys` (numeric: the cell's index on the feature's
    /// grid; categorical: the choice).
    fn predict(tree: &Tree, keys: &[u32]) -> f64 {
        let mut node = 0;
        loop {
            match tree.nodes[node] {
                Node::Leaf { value } => return value,
                Node::Numeric {
                    feature,
                    cut,
                    left,
                    right,
                } => node = if keys[feature] < cut { left } else { right },
                Node::Categorical {
                    feature,
                    subset,
                    left,
                    right,
                } => {
                    node = if tree.contains(subset, keys[feature] as usize) {
                        left
                    } else {
                        right
                    }
                }
            }
        }
    }

    #[test]
    fn grown_trees_agree_with_brute_force_over_every_cell() {
        use super::super::forest::{Dataset, Growth, TreeBuilder};
        use crate::rng::{below, trial_rng, unit};

        // Two numeric features and a categorical one, an objective with main effects and an
        // interaction; 30 trials, so that the grid has 30 × 30 × 4 cells.
        let n = 30;
        let mut rng = trial_rng(5, 0, 0);
        let mut columns = vec![0.0; 3 * n];
        for trial in 0..n {
            columns[trial] = unit(&mut rng);
            columns[n + trial] = unit(&mut rng);
            columns[2 * n + trial] = below(&mut rng, 4) as f64;
        }
        let targets = (0..n)
            .map(|t| {
                let (a, b, c) = (columns[t], columns[n + t], columns[2 * n + t]);
                a + 2.0 * a * b + [0.0, 0.5, -0.5, 1.0][c as usize]
            })
            .collect();
        let kinds = vec![
            Kind::Numeric,
            Kind::Numeric,
            Kind::Categorical { choices: 4 },
        ];
        let data = Dataset::new(kinds.clone(), &columns, targets);
        let growth = Growth {
            max_depth: 64,
            min_samples_split: 2,
            min_samples_leaf: 1,
        };
        let mut builder = TreeBuilder::new(&data, growth);
        let mut decomposition = Decomposition::new(&kinds, &data.edges);
        let mut tree = Tree::default();
        for index in 0..4 {
            builder.grow(9, index, &mut tree);
            // Every cell's volume and value, then the marginals by summing over the others.
            let widths = |feature: usize| -> Vec<f64> {
                match kinds[feature] {
                    Kind::Numeric => data.edges[feature]
                        .windows(2)
                        .map(|e| e[1] - e[0])
                        .collect(),
                    Kind::Categorical { choices } => vec![1.0 / choices as f64; choices],
                }
            };
            let grid = [widths(0), widths(1), widths(2)];
            let mut marginals: Vec<Vec<f64>> = grid.iter().map(|w| vec![0.0; w.len()]).collect();
            let (mut mean, mut square) = (0.0, 0.0);
            for (i, wi) in grid[0].iter().enumerate() {
                for (j, wj) in grid[1].iter().enumerate() {
                    for (k, wk) in grid[2].iter().enumerate() {
                        let value = predict(&tree, &[i as u32, j as u32, k as u32]);
                        mean += wi * wj * wk * value;
                        square += wi * wj * wk * value * value;
                        marginals[0][i] += wj * wk * value;
                        marginals[1][j] += wi * wk * value;
                        marginals[2][k] += wi * wj * value;
                    }
                }
            }
            let variance = square - mean * mean;
            let expected: Vec<f64> = (0..3)
                .map(|f| {
                    let v: f64 = grid[f]
                        .iter()
                        .zip(&marginals[f])
                        .map(|(w, a)| w * (a - mean).powi(2))
                        .sum();
                    v / variance
                })
                .collect();
            let mut shares = [0.0; 3];
            let found = decomposition.main_effects(&tree, &mut shares);
            assert!(
                (found - variance).abs() < 1e-9,
                "tree {index}: {found} vs {variance}"
            );
            for (share, expected) in shares.iter().zip(&expected) {
                assert!(
                    (share - expected).abs() < 1e-9,
                    "tree {index}: {shares:?} vs {expected:?}"
                );
            }
        }
    }

    #[test]
    fn a_constant_tree_has_no_variance() {
        let tree = Tree {
            nodes: vec![leaf(2.0)],
            subsets: Vec::new(),
        };
        let mut shares = [7.0];
        let edges = [vec![0.0, 0.5, 1.0]];
        let variance =
            Decomposition::new(&[Kind::Numeric], &edges).main_effects(&tree, &mut shares);
        assert_eq!((variance, shares), (0.0, [7.0]));
    }
}
