//! Splitting what a run needs into `runs/log-batch` requests within MLflow's limits.
//!
//! MLflow takes at most 1,000 metric points, 100 params and 100 tags per call, and at most
//! 1,000 items in all. [`split`] fills each request as far as the limits allow, params and
//! tags first (so a run's params arrive with its first points), and keeps the order of the
//! points it is given.

use super::client::{KeyValue, LogBatch, Metric};

/// Metric points per request.
pub const MAX_METRICS: usize = 1000;
/// Params per request.
pub const MAX_PARAMS: usize = 100;
/// Tags per request.
pub const MAX_TAGS: usize = 100;
/// Items (points, params and tags together) per request.
pub const MAX_ITEMS: usize = 1000;

/// The requests that log `metrics`, `params` and `tags`, in order; none when all are empty.
pub fn split(metrics: Vec<Metric>, params: Vec<KeyValue>, tags: Vec<KeyValue>) -> Vec<LogBatch> {
    let mut metrics = metrics.into_iter().peekable();
    let mut params = params.into_iter().peekable();
    let mut tags = tags.into_iter().peekable();
    let mut batches = Vec::new();
    while metrics.peek().is_some() || params.peek().is_some() || tags.peek().is_some() {
        let mut batch = LogBatch::default();
        batch.params.extend(params.by_ref().take(MAX_PARAMS));
        batch.tags.extend(tags.by_ref().take(MAX_TAGS));
        let room = MAX_METRICS.min(MAX_ITEMS - batch.params.len() - batch.tags.len());
        batch.metrics.extend(metrics.by_ref().take(room));
        batches.push(batch);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize) -> Vec<Metric> {
        (0..n)
            .map(|i| Metric {
                key: "loss".to_string(),
                value: i as f64,
                timestamp: 1,
                step: i as i64,
            })
            .collect()
    }

    fn pairs(n: usize) -> Vec<KeyValue> {
        (0..n)
            .map(|i| KeyValue::new(format!("k{i}"), "v"))
            .collect()
    }

    #[test]
    fn nothing_to_log_is_no_request() {
        assert!(split(Vec::new(), Vec::new(), Vec::new()).is_empty());
    }

    #[test]
    fn every_request_is_within_the_limits_and_nothing_is_lost() {
        for (m, p, t) in [
            (0, 3, 0),
            (1000, 0, 0),
            (1001, 0, 0),
            (2500, 150, 250),
            (999, 1, 1),
        ] {
            let batches = split(points(m), pairs(p), pairs(t));
            for batch in &batches {
                assert!(batch.metrics.len() <= MAX_METRICS);
                assert!(batch.params.len() <= MAX_PARAMS);
                assert!(batch.tags.len() <= MAX_TAGS);
                assert!(batch.metrics.len() + batch.params.len() + batch.tags.len() <= MAX_ITEMS);
            }
            let steps: Vec<i64> = batches
                .iter()
                .flat_map(|b| b.metrics.iter().map(|point| point.step))
                .collect();
            assert_eq!(steps, (0..m as i64).collect::<Vec<_>>());
            assert_eq!(batches.iter().map(|b| b.params.len()).sum::<usize>(), p);
            assert_eq!(batches.iter().map(|b| b.tags.len()).sum::<usize>(), t);
        }
    }

    #[test]
    fn params_come_with_the_first_points() {
        let batches = split(points(1000), pairs(2), Vec::new());
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].params.len(), 2);
        assert_eq!(batches[0].metrics.len(), 998);
        assert_eq!(batches[1].metrics.len(), 2);
    }
}
