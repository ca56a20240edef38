//! The random forest fANOVA reads: regression trees grown on bootstrap samples.
//!
//! The trees follow scikit-learn's `RandomForestRegressor` as Optuna configures it, so that
//! importances agree with what users of Optuna see: each tree is grown on a bootstrap sample
//! (as many draws with replacement as there are trials), every split considers every feature
//! (in a random order, which only decides ties) and minimises the squared error, and the tree
//! grows until a node has fewer than `min_samples_split` distinct trials, is `max_depth` deep,
//! holds a single objective value or cannot be split (every feature constant, or
//! `min_samples_leaf` would be broken on every cut). One difference: a threshold lies half-way
//! between neighbouring values among all the trials, where scikit-learn takes the neighbours
//! within the bootstrap sample; the two differ only next to a value the bootstrap left out,
//! and the shared grid is what makes the decomposition fast (below).
//!
//! Categorical features are split into two subsets of choices. For squared error the best
//! such split puts the choices in order of their mean objective and cuts that order once
//! (Fisher 1958; Breiman et al. 1984), so a categorical costs a sort of its choices, not a
//! search over `2^k` subsets. Choices absent from a node go to the right child.
//!
//! Speed comes from sorting once. Each numeric feature's values are replaced by their rank
//! among the feature's distinct values (a categorical's by its choice index), and its trials
//! are sorted once for the whole forest. A tree keeps, for every feature, its distinct
//! bootstrap trials in that order, and a node is the same range `start..end` in every
//! feature's block. Finding a split is then a linear scan per feature, and applying it a
//! stable partition of each block, so a tree costs `O(n · d · depth)` with no sorting and no
//! allocation per node: every buffer belongs to the [`TreeBuilder`] and is reused from tree to
//! tree. The bootstrap is kept as weights (how often each trial was drawn) on the distinct
//! trials, as scikit-learn does. A threshold is named by the rank of the first value above it,
//! so every tree of the forest cuts a feature on the same grid of midpoints, which the
//! decomposition uses directly.

use rand::Rng;

use super::encode::Kind;
use crate::rng::{below, trial_rng};

/// The stream of a tree's bootstrap and feature orders (the tree's index is the "trial").
const FOREST_STREAM: u64 = 0x6661_6e6f_7661;

/// Objective values closer than this (the objective is scaled to `[-1, 1]` first) count as
/// equal: a node whose values are all within it is a leaf.
const PURE_SPREAD: f64 = 1e-12;

/// The trials the forest learns from, encoded, feature by feature.
#[derive(Debug, Clone)]
pub(super) struct Dataset {
    /// Each feature's kind.
    pub kinds: Vec<Kind>,
    /// Each trial's key for each feature, feature-major (trial `i`'s key for feature `f` is at
    /// `f * n + i`): a numeric value's rank among the feature's distinct values, or a choice
    /// index.
    keys: Vec<u32>,
    /// Each feature's trials sorted by key (ties by trial), feature-major.
    sorted: Vec<u32>,
    /// Per numeric feature, the edges of the cells that its distinct values own: 0, the
    /// midpoints between neighbouring values, 1. Value of rank `r` owns `edges[r]..edges[r+1]`,
    /// and a split at cut `r` is a threshold at `edges[r]`. Empty for categorical features.
    pub edges: Vec<Vec<f64>>,
    /// The objective value of each trial (centred and scaled, see [`super::fanova`]).
    pub targets: Vec<f64>,
}

impl Dataset {
    /// The dataset of `columns` (feature-major: trial `i`'s value of feature `f` at
    /// `f * n + i`; numeric values in `[0, 1]`, choices as their index) and `targets`. At most
    /// `u32::MAX` trials (the caller subsamples).
    pub fn new(kinds: Vec<Kind>, columns: &[f64], targets: Vec<f64>) -> Dataset {
        let n = targets.len().min(u32::MAX as usize);
        let mut keys = vec![0; n * kinds.len()];
        let mut sorted = Vec::with_capacity(n * kinds.len());
        let mut edges = Vec::with_capacity(kinds.len());
        for (feature, kind) in kinds.iter().enumerate() {
            let column = &columns[feature * n..(feature + 1) * n];
            let keys = &mut keys[feature * n..(feature + 1) * n];
            let start = sorted.len();
            sorted.extend(0..n as u32);
            let order = &mut sorted[start..];
            order.sort_by(|&a, &b| {
                column[a as usize]
                    .total_cmp(&column[b as usize])
                    .then(a.cmp(&b))
            });
            let mut feature_edges = Vec::new();
            match kind {
                Kind::Numeric => {
                    feature_edges.push(0.0);
                    let mut previous: Option<f64> = None;
                    let mut rank = 0;
                    for &trial in order.iter() {
                        let x = column[trial as usize];
                        if let Some(before) = previous
                            && x > before
                        {
                            feature_edges.push((before + (x - before) / 2.0).clamp(0.0, 1.0));
                            rank += 1;
                        }
                        previous = Some(x);
                        keys[trial as usize] = rank;
                    }
                    feature_edges.push(1.0);
                }
                Kind::Categorical { .. } => {
                    for (key, x) in keys.iter_mut().zip(column) {
                        *key = *x as u32;
                    }
                }
            }
            edges.push(feature_edges);
        }
        Dataset {
            kinds,
            keys,
            sorted,
            edges,
            targets,
        }
    }

    /// The number of trials.
    pub fn len(&self) -> usize {
        self.targets.len().min(u32::MAX as usize)
    }
}

/// How trees grow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Growth {
    /// Nodes this deep are leaves (the root is at depth 0).
    pub max_depth: usize,
    /// A node with fewer distinct trials is a leaf.
    pub min_samples_split: usize,
    /// Neither child of a split may have fewer distinct trials.
    pub min_samples_leaf: usize,
}

/// A node of a regression tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Node {
    /// Predicts `value`.
    Leaf {
        /// The mean objective of the node's trials (bootstrap-weighted).
        value: f64,
    },
    /// Sends keys below `cut` (values below the threshold `edges[cut]`) to `left`, the rest
    /// to `right`.
    Numeric {
        /// The feature split.
        feature: usize,
        /// The rank of the first value that goes right.
        cut: u32,
        /// Index of the left child.
        left: usize,
        /// Index of the right child.
        right: usize,
    },
    /// Sends the choices of a subset to `left`, the rest to `right`.
    Categorical {
        /// The feature split.
        feature: usize,
        /// Where the subset starts in [`Tree::subsets`].
        subset: usize,
        /// Index of the left child.
        left: usize,
        /// Index of the right child.
        right: usize,
    },
}

/// A regression tree; the root is node 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Tree {
    /// The nodes; children come after their parent.
    pub nodes: Vec<Node>,
    /// Bit sets of choices, one per categorical split, each `choices.div_ceil(64)` words long.
    pub subsets: Vec<u64>,
}

impl Tree {
    /// Whether `choice` belongs to the subset starting at `subset`.
    pub fn contains(&self, subset: usize, choice: usize) -> bool {
        self.subsets
            .get(subset + choice / 64)
            .is_some_and(|word| word >> (choice % 64) & 1 == 1)
    }
}

/// A trial in a feature's block: its key for the feature and its index among the tree's
/// distinct trials. Eight bytes, so that a tree's blocks for 10,000 trials of 10 parameters
/// fit in a core's cache.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    key: u32,
    trial: u32,
}

/// A distinct trial of the current tree's bootstrap.
#[derive(Debug, Clone, Copy, Default)]
struct Drawn {
    /// How often the bootstrap drew it.
    weight: f64,
    /// `weight * target`.
    weighted_target: f64,
    /// Its objective value.
    target: f64,
}

/// A node waiting to be grown: its index, its range in every block and its depth.
#[derive(Debug, Clone, Copy)]
struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
}

/// The run of one choice within a categorical feature's range.
#[derive(Debug, Clone, Copy)]
struct Run {
    choice: usize,
    mean: f64,
    weighted_sum: f64,
    weight: f64,
    trials: usize,
}

/// A candidate split of a node.
#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    /// `Σ_left² / w_left + Σ_right² / w_right` (sums of weighted objective values, total
    /// weights): the larger, the smaller the children's squared error.
    score: f64,
    /// For a numeric split, the rank of the first value that goes right; the left child is
    /// the first `left_trials` of the feature's block. For a categorical split, the subset is
    /// in `TreeBuilder::best_subset`.
    cut: u32,
    /// How many distinct trials go left.
    left_trials: usize,
}

/// Grows trees on one dataset, reusing its buffers from tree to tree.
#[derive(Debug)]
pub(super) struct TreeBuilder<'a> {
    data: &'a Dataset,
    growth: Growth,
    /// How often the current tree's bootstrap drew each trial.
    times_drawn: Vec<u32>,
    /// Each trial's index among the current tree's distinct trials.
    local: Vec<u32>,
    /// The current tree's distinct trials.
    drawn: Vec<Drawn>,
    /// The current tree's distinct trials, one block per feature, each in the feature's order
    /// within every node's range.
    blocks: Vec<Entry>,
    /// Scratch for partitions.
    spare: Vec<Entry>,
    /// Whether each distinct trial goes to the left child of the split being applied.
    goes_left: Vec<bool>,
    /// Choice runs of the categorical feature being scanned.
    runs: Vec<Run>,
    /// The subset of the best categorical split at the current node.
    best_subset: Vec<u64>,
    /// The order features are tried in at the current node.
    order: Vec<usize>,
    pending: Vec<Pending>,
}

impl<'a> TreeBuilder<'a> {
    /// A builder for `data`.
    pub fn new(data: &'a Dataset, growth: Growth) -> TreeBuilder<'a> {
        let n = data.len();
        let features = data.kinds.len();
        TreeBuilder {
            data,
            growth,
            times_drawn: vec![0; n],
            local: vec![0; n],
            drawn: Vec::with_capacity(n),
            blocks: Vec::with_capacity(n * features),
            spare: Vec::with_capacity(n),
            goes_left: Vec::with_capacity(n),
            runs: Vec::new(),
            best_subset: Vec::new(),
            order: (0..features).collect(),
            pending: Vec::new(),
        }
    }

    /// Grows tree `index` of the forest seeded with `seed` into `tree` (its old nodes are
    /// dropped, its buffers kept).
    pub fn grow(&mut self, seed: u64, index: u64, tree: &mut Tree) {
        let n = self.times_drawn.len();
        let mut rng = trial_rng(seed, index, FOREST_STREAM);
        self.times_drawn.fill(0);
        for _ in 0..n {
            let drawn = below(&mut rng, n as u64) as usize;
            if let Some(times) = self.times_drawn.get_mut(drawn) {
                *times += 1;
            }
        }
        self.drawn.clear();
        for (trial, (&times, local)) in self.times_drawn.iter().zip(&mut self.local).enumerate() {
            if times > 0 {
                *local = self.drawn.len() as u32;
                let weight = f64::from(times);
                let target = self.data.targets[trial];
                self.drawn.push(Drawn {
                    weight,
                    weighted_target: weight * target,
                    target,
                });
            }
        }
        let distinct = self.drawn.len();
        // Each feature's distinct trials in its order. Every trial is written and only the
        // drawn ones advance the cursor: whether a trial was drawn is a coin toss that a
        // branch would mispredict a third of the time.
        let features = self.data.kinds.len();
        self.blocks.clear();
        self.blocks
            .resize(distinct * features + 1, Entry::default());
        for feature in 0..features {
            let keys = &self.data.keys[feature * n..(feature + 1) * n];
            let ids = &self.data.sorted[feature * n..(feature + 1) * n];
            let mut cursor = feature * distinct;
            for &id in ids {
                let id = id as usize;
                self.blocks[cursor] = Entry {
                    key: keys[id],
                    trial: self.local[id],
                };
                cursor += usize::from(self.times_drawn[id] > 0);
            }
        }
        self.blocks.truncate(distinct * features);
        self.spare.clear();
        self.spare.resize(distinct, Entry::default());
        self.goes_left.clear();
        self.goes_left.resize(distinct, false);

        tree.nodes.clear();
        tree.subsets.clear();
        tree.nodes.push(Node::Leaf { value: 0.0 });
        self.pending.clear();
        self.pending.push(Pending {
            node: 0,
            start: 0,
            end: distinct,
            depth: 0,
        });
        while let Some(pending) = self.pending.pop() {
            self.grow_node(pending, distinct, &mut rng, tree);
        }
    }

    /// Splits the node `pending` if it should be split, or makes it a leaf.
    fn grow_node(
        &mut self,
        pending: Pending,
        distinct: usize,
        rng: &mut impl Rng,
        tree: &mut Tree,
    ) {
        let Pending {
            node,
            start,
            end,
            depth,
        } = pending;
        let (mut weight, mut weighted_sum) = (0.0, 0.0);
        let (mut lowest, mut highest) = (f64::INFINITY, f64::NEG_INFINITY);
        for entry in &self.blocks[start..end] {
            let drawn = self.drawn[entry.trial as usize];
            weight += drawn.weight;
            weighted_sum += drawn.weighted_target;
            lowest = lowest.min(drawn.target);
            highest = highest.max(drawn.target);
        }
        let value = if weight > 0.0 {
            weighted_sum / weight
        } else {
            0.0
        };
        let leaf = end - start < self.growth.min_samples_split
            || depth >= self.growth.max_depth
            || highest - lowest <= PURE_SPREAD;
        let best = if leaf {
            None
        } else {
            self.best_split(start, end, distinct, weight, weighted_sum, rng)
        };
        let Some(best) = best else {
            tree.nodes[node] = Node::Leaf { value };
            return;
        };

        // Mark the trials that go left, then partition every block but the split feature's
        // own when it is numeric (its left trials come first already).
        let block = best.feature * distinct;
        let numeric = self.data.kinds[best.feature] == Kind::Numeric;
        let left = tree.nodes.len();
        let right = left + 1;
        tree.nodes[node] = if numeric {
            for (index, entry) in self.blocks[block + start..block + end].iter().enumerate() {
                self.goes_left[entry.trial as usize] = index < best.left_trials;
            }
            Node::Numeric {
                feature: best.feature,
                cut: best.cut,
                left,
                right,
            }
        } else {
            for entry in &self.blocks[block + start..block + end] {
                let choice = entry.key as usize;
                let word = self.best_subset.get(choice / 64).copied().unwrap_or(0);
                self.goes_left[entry.trial as usize] = word >> (choice % 64) & 1 == 1;
            }
            let subset = tree.subsets.len();
            tree.subsets.extend_from_slice(&self.best_subset);
            Node::Categorical {
                feature: best.feature,
                subset,
                left,
                right,
            }
        };
        for feature in 0..self.data.kinds.len() {
            let block = feature * distinct;
            // A feature constant here stays constant below, and its block's range holds only
            // its one key whichever trials it lists, so it is never read again but to see that
            // it is constant: only block 0, which the children's totals come from, must stay
            // exact.
            let constant = self.blocks[block + start].key == self.blocks[block + end - 1].key;
            let in_order = numeric && feature == best.feature;
            let never_read = constant && feature > 0;
            if !(in_order || never_read) {
                self.partition(block + start, block + end);
            }
        }
        tree.nodes.push(Node::Leaf { value });
        tree.nodes.push(Node::Leaf { value });
        let middle = start + best.left_trials;
        let depth = depth + 1;
        self.pending.push(Pending {
            node: right,
            start: middle,
            end,
            depth,
        });
        self.pending.push(Pending {
            node: left,
            start,
            end: middle,
            depth,
        });
    }

    /// Moves the entries of `blocks[from..to]` that go left before those that go right,
    /// keeping each side's order. Branch-free: every entry is written to both sides and the
    /// side it belongs to advances, since which side a trial takes is a coin toss the
    /// processor cannot predict.
    fn partition(&mut self, from: usize, to: usize) {
        let mut write = from;
        let mut spilled = 0;
        for read in from..to {
            let entry = self.blocks[read];
            let left = self.goes_left[entry.trial as usize];
            self.blocks[write] = entry;
            self.spare[spilled] = entry;
            write += usize::from(left);
            spilled += usize::from(!left);
        }
        self.blocks[write..to].copy_from_slice(&self.spare[..spilled]);
    }

    /// The best split of the node `start..end`, if any is allowed.
    fn best_split(
        &mut self,
        start: usize,
        end: usize,
        distinct: usize,
        weight: f64,
        weighted_sum: f64,
        rng: &mut impl Rng,
    ) -> Option<Split> {
        // Fisher–Yates: the order only decides between equally good splits.
        for i in (1..self.order.len()).rev() {
            let j = below(rng, i as u64 + 1) as usize;
            self.order.swap(i, j);
        }
        let mut best: Option<Split> = None;
        for position in 0..self.order.len() {
            let feature = self.order[position];
            let range = feature * distinct + start..feature * distinct + end;
            // Sorted by key within the node, a feature is constant when its ends agree.
            if self.blocks[range.start].key == self.blocks[range.end - 1].key {
                continue;
            }
            let better_than = best.map_or(f64::NEG_INFINITY, |b| b.score);
            let found = match self.data.kinds[feature] {
                Kind::Numeric => self.numeric_split(range, weight, weighted_sum, better_than),
                Kind::Categorical { choices } => {
                    self.categorical_split(range, choices, weight, weighted_sum, better_than)
                }
            };
            if let Some(split) = found {
                best = Some(Split { feature, ..split });
            }
        }
        best
    }

    /// The best threshold of a numeric feature over `range` of its block, when it scores
    /// above `better_than`.
    fn numeric_split(
        &self,
        range: std::ops::Range<usize>,
        weight: f64,
        weighted_sum: f64,
        better_than: f64,
    ) -> Option<Split> {
        let block = &self.blocks[range];
        let min_leaf = self.growth.min_samples_leaf.max(1);
        if block.len() < 2 * min_leaf {
            return None;
        }
        let (mut left_weight, mut left_sum) = (0.0, 0.0);
        for entry in &block[..min_leaf - 1] {
            let drawn = self.drawn[entry.trial as usize];
            left_weight += drawn.weight;
            left_sum += drawn.weighted_target;
        }
        // The score of a cut is l²/wl + r²/wr. The best is kept as a fraction (numerator,
        // denominator) and compared by cross-multiplying, so the loop never divides (the
        // weights are positive draw counts).
        let (mut best_numerator, mut best_denominator) = (better_than, 1.0);
        let mut best_cut = None;
        // Cut after position `last_left`; both sides keep at least `min_leaf` trials.
        for last_left in min_leaf - 1..block.len() - min_leaf {
            let entry = block[last_left];
            let drawn = self.drawn[entry.trial as usize];
            left_weight += drawn.weight;
            left_sum += drawn.weighted_target;
            if block[last_left + 1].key <= entry.key {
                continue;
            }
            let right_weight = weight - left_weight;
            let right_sum = weighted_sum - left_sum;
            let numerator =
                left_sum * left_sum * right_weight + right_sum * right_sum * left_weight;
            let denominator = left_weight * right_weight;
            if numerator * best_denominator > best_numerator * denominator {
                best_numerator = numerator;
                best_denominator = denominator;
                best_cut = Some(last_left);
            }
        }
        let last_left = best_cut?;
        Some(Split {
            feature: 0,
            score: best_numerator / best_denominator,
            cut: block[last_left + 1].key,
            left_trials: last_left + 1,
        })
    }

    /// The best subset split of a categorical feature over `range` of its block. When it
    /// scores above `better_than`, its subset is written to `best_subset` and it is returned.
    fn categorical_split(
        &mut self,
        range: std::ops::Range<usize>,
        choices: usize,
        weight: f64,
        weighted_sum: f64,
        better_than: f64,
    ) -> Option<Split> {
        // The block is sorted by choice within the node, so each choice is one run; the run
        // being summed stays in registers.
        self.runs.clear();
        let block = &self.blocks[range];
        let mut current = match block.first() {
            Some(entry) => Run {
                choice: entry.key as usize,
                mean: 0.0,
                weighted_sum: 0.0,
                weight: 0.0,
                trials: 0,
            },
            None => return None,
        };
        for entry in block {
            let choice = entry.key as usize;
            if choice != current.choice {
                self.runs.push(current);
                current = Run {
                    choice,
                    mean: 0.0,
                    weighted_sum: 0.0,
                    weight: 0.0,
                    trials: 0,
                };
            }
            let drawn = self.drawn[entry.trial as usize];
            current.weight += drawn.weight;
            current.weighted_sum += drawn.weighted_target;
            current.trials += 1;
        }
        self.runs.push(current);
        if self.runs.len() < 2 {
            return None;
        }
        for run in &mut self.runs {
            run.mean = run.weighted_sum / run.weight;
        }
        self.runs
            .sort_by(|a, b| a.mean.total_cmp(&b.mean).then(a.choice.cmp(&b.choice)));
        let min_leaf = self.growth.min_samples_leaf.max(1);
        let total_trials: usize = self.runs.iter().map(|run| run.trials).sum();
        let (mut left_weight, mut left_sum, mut left_trials) = (0.0, 0.0, 0);
        let mut best: Option<(f64, usize, usize)> = None;
        for (cut, run) in self.runs[..self.runs.len() - 1].iter().enumerate() {
            left_weight += run.weight;
            left_sum += run.weighted_sum;
            left_trials += run.trials;
            if left_trials < min_leaf || total_trials - left_trials < min_leaf {
                continue;
            }
            let right_weight = weight - left_weight;
            let right_sum = weighted_sum - left_sum;
            let score = left_sum * left_sum / left_weight + right_sum * right_sum / right_weight;
            if score > best.map_or(better_than, |(b, _, _)| b) {
                best = Some((score, cut, left_trials));
            }
        }
        let (score, cut, left_trials) = best?;
        self.best_subset.clear();
        self.best_subset.resize(choices.div_ceil(64), 0);
        for run in &self.runs[..=cut] {
            if let Some(word) = self.best_subset.get_mut(run.choice / 64) {
                *word |= 1 << (run.choice % 64);
            }
        }
        Some(Split {
            feature: 0,
            score,
            cut: 0,
            left_trials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn growth() -> Growth {
        Growth {
            max_depth: 64,
            min_samples_split: 2,
            min_samples_leaf: 1,
        }
    }

    /// Follows `tree` to the leaf of trial `trial` of `data`.
    fn predict(tree: &Tree, data: &Dataset, trial: usize) -> f64 {
        let key = |feature: usize| data.keys[feature * data.len() + trial];
        let mut node = 0;
        loop {
            match tree.nodes[node] {
                Node::Leaf { value } => return value,
                Node::Numeric {
                    feature,
                    cut,
                    left,
                    right,
                } => node = if key(feature) < cut { left } else { right },
                Node::Categorical {
                    feature,
                    subset,
                    left,
                    right,
                } => {
                    node = if tree.contains(subset, key(feature) as usize) {
                        left
                    } else {
                        right
                    }
                }
            }
        }
    }

    fn leaves(tree: &Tree) -> usize {
        tree.nodes
            .iter()
            .filter(|node| matches!(node, Node::Leaf { .. }))
            .count()
    }

    #[test]
    fn numeric_values_become_ranks_with_midpoint_edges() {
        let data = Dataset::new(
            vec![Kind::Numeric, Kind::Categorical { choices: 3 }],
            &[0.5, 0.25, 0.5, 1.0, 2.0, 0.0, 2.0, 1.0],
            vec![0.0; 4],
        );
        assert_eq!(data.keys, [1, 0, 1, 2, 2, 0, 2, 1]);
        assert_eq!(data.sorted, [1, 0, 2, 3, 1, 3, 0, 2]);
        assert_eq!(data.edges, [vec![0.0, 0.375, 0.75, 1.0], vec![]]);
    }

    #[test]
    fn a_fully_grown_tree_reproduces_its_bootstrap_trials() {
        // Feature 0 numeric, feature 1 categorical with 3 choices.
        let x0 = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4];
        let x1 = [0.0, 1.0, 2.0, 2.0, 1.0, 0.0, 1.0, 2.0];
        let targets: Vec<f64> = x0
            .iter()
            .zip(&x1)
            .map(|(a, c)| a + [0.0, 3.0, -2.0][*c as usize])
            .collect();
        let columns: Vec<f64> = x0.iter().chain(&x1).copied().collect();
        let data = Dataset::new(
            vec![Kind::Numeric, Kind::Categorical { choices: 3 }],
            &columns,
            targets.clone(),
        );
        let mut builder = TreeBuilder::new(&data, growth());
        let mut tree = Tree::default();
        for index in 0..4 {
            builder.grow(7, index, &mut tree);
            for (trial, target) in targets.iter().enumerate() {
                if builder.times_drawn[trial] > 0 {
                    let predicted = predict(&tree, &data, trial);
                    assert!(
                        (predicted - target).abs() < 1e-12,
                        "tree {index} trial {trial}"
                    );
                }
            }
            assert_eq!(leaves(&tree) * 2 - 1, tree.nodes.len(), "a binary tree");
        }
    }

    #[test]
    fn the_best_cut_minimises_the_squared_error() {
        // A step at 0.6 with noise on both sides: a stump cuts between 0.5 and 0.7.
        let x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.8, 0.9];
        let targets = vec![0.1, -0.1, 0.0, 0.1, -0.1, 1.0, 1.1, 0.9];
        let data = Dataset::new(vec![Kind::Numeric], &x, targets);
        let stump = Growth {
            max_depth: 1,
            ..growth()
        };
        let mut tree = Tree::default();
        for index in 0..8 {
            let mut builder = TreeBuilder::new(&data, stump);
            builder.grow(3, index, &mut tree);
            let Node::Numeric { cut, .. } = tree.nodes[0] else {
                continue; // A bootstrap without both sides of the step.
            };
            if builder.times_drawn[4] > 0 && builder.times_drawn[5] > 0 {
                assert_eq!(cut, 5, "tree {index}");
                assert!((data.edges[0][5] - 0.6).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn growth_limits_are_honoured() {
        let n = 40;
        let x: Vec<f64> = (0..n).map(|i| f64::from(i) / f64::from(n)).collect();
        let data = Dataset::new(vec![Kind::Numeric], &x, x.iter().map(|v| v * v).collect());
        let mut tree = Tree::default();
        let stump = Growth {
            max_depth: 1,
            ..growth()
        };
        TreeBuilder::new(&data, stump).grow(1, 0, &mut tree);
        assert_eq!(tree.nodes.len(), 3);
        let coarse = Growth {
            min_samples_leaf: 8,
            ..growth()
        };
        let mut builder = TreeBuilder::new(&data, coarse);
        builder.grow(1, 0, &mut tree);
        // Every leaf holds at least 8 distinct trials.
        let distinct = builder.drawn.len();
        assert!(
            leaves(&tree) >= 2 && leaves(&tree) * 8 <= distinct,
            "{} leaves",
            leaves(&tree)
        );
    }

    #[test]
    fn constant_objectives_give_a_single_leaf() {
        let data = Dataset::new(vec![Kind::Numeric], &[0.1, 0.2, 0.3], vec![0.5; 3]);
        let mut tree = Tree::default();
        TreeBuilder::new(&data, growth()).grow(3, 0, &mut tree);
        assert_eq!(tree.nodes, [Node::Leaf { value: 0.5 }]);
    }
}
