//! The live view: a kube watcher on MCPDeployments feeding a bar per deployment (indicatif) on
//! a terminal, or one plain line per change of step otherwise. What a row says comes from
//! [`super::progress`]; this module only does the I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::progress::{
    ProgressRow, RowState, bar_message, change_line, is_ready, progress_row, summary_message,
};
use crate::api::deployment::MCPDeployment;
use crate::fleet::key_of;

/// Above this many deployments a terminal gets one bar for all instead of a bar each.
pub const MAX_BARS: usize = 40;

/// Prints notes (faults injected, milestones) without tearing the bars.
#[derive(Clone)]
pub enum Notes {
    /// Above the bars.
    Bars(MultiProgress),
    /// Above the one bar.
    Bar(ProgressBar),
    /// On stdout, with the time since the start.
    Plain(Instant),
}

impl Notes {
    /// Prints one note.
    pub fn note(&self, text: &str) {
        match self {
            Notes::Bars(multi) => {
                // A failed redraw only loses a note on a terminal that went away.
                let _ = multi.println(text);
            }
            Notes::Bar(bar) => bar.println(text),
            Notes::Plain(start) => println!("[{:>5.1}s] {text}", start.elapsed().as_secs_f64()),
        }
    }
}

/// A bar per deployment, or plain lines.
pub enum LiveView {
    /// indicatif bars, one per expected deployment, in the order they were applied.
    Bars {
        /// The bars' container.
        multi: MultiProgress,
        /// Bar of each `namespace/name`.
        bars: HashMap<String, ProgressBar>,
    },
    /// One bar for all when there are too many for a bar each: Ready of all, and how many are in
    /// each step.
    Summary {
        /// The bar.
        bar: ProgressBar,
        /// The latest row per deployment.
        rows: BTreeMap<String, ProgressRow>,
    },
    /// One line per change of step or state.
    Lines {
        /// Start of the demo, for the time prefix.
        start: Instant,
        /// The last row printed per deployment.
        last: HashMap<String, ProgressRow>,
    },
}

impl LiveView {
    /// Bars when `terminal` (one for all above [`MAX_BARS`] deployments), plain lines
    /// otherwise, for the deployments `keys`.
    pub fn new(keys: &[String], terminal: bool) -> Self {
        if !terminal {
            return LiveView::Lines {
                start: Instant::now(),
                last: HashMap::new(),
            };
        }
        if keys.len() > MAX_BARS {
            let bar = ProgressBar::with_draw_target(
                Some(keys.len() as u64),
                ProgressDrawTarget::stdout(),
            );
            let style = ProgressStyle::with_template(
                "Ready {pos}/{len} [{bar:30.cyan/blue}] {elapsed} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            let rows = keys
                .iter()
                .map(|k| {
                    let row = ProgressRow {
                        step: "Pending".to_owned(),
                        percent: 0,
                        state: RowState::Waiting,
                        message: String::new(),
                    };
                    (k.clone(), row)
                })
                .collect::<BTreeMap<_, _>>();
            bar.set_message(summary_message(rows.values()));
            return LiveView::Summary { bar, rows };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let width = keys.iter().map(String::len).max().unwrap_or(10).min(40);
        let template = format!("{{prefix:<{width}}} [{{bar:24.cyan/blue}}] {{pos:>3}}% {{msg}}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let mut bars = HashMap::new();
        for key in keys {
            let bar = multi.add(ProgressBar::new(100));
            bar.set_style(style.clone());
            bar.set_prefix(key.clone());
            bar.set_message("Pending      waiting for the operator");
            bars.insert(key.clone(), bar);
        }
        LiveView::Bars { multi, bars }
    }

    /// Where notes go while this view is shown.
    pub fn notes(&self) -> Notes {
        match self {
            LiveView::Bars { multi, .. } => Notes::Bars(multi.clone()),
            LiveView::Summary { bar, .. } => Notes::Bar(bar.clone()),
            LiveView::Lines { start, .. } => Notes::Plain(*start),
        }
    }

    /// Shows `row` for deployment `key`.
    pub fn update(&mut self, key: &str, row: &ProgressRow) {
        match self {
            LiveView::Bars { bars, .. } => {
                if let Some(bar) = bars.get(key) {
                    bar.set_position(row.percent);
                    bar.set_message(bar_message(row));
                }
            }
            LiveView::Summary { bar, rows } => {
                if let Some(slot) = rows.get_mut(key) {
                    *slot = row.clone();
                    let ready = rows.values().filter(|r| r.state == RowState::Ready).count();
                    bar.set_position(ready as u64);
                    bar.set_message(summary_message(rows.values()));
                }
            }
            LiveView::Lines { start, last } => {
                if let Some(line) = change_line(key, last.get(key), row) {
                    println!("[{:>5.1}s] {line}", start.elapsed().as_secs_f64());
                }
                last.insert(key.to_owned(), row.clone());
            }
        }
    }

    /// Leaves the bars on screen as they are.
    pub fn finish(&self) {
        match self {
            LiveView::Bars { bars, .. } => bars.values().for_each(ProgressBar::abandon),
            LiveView::Summary { bar, .. } => bar.abandon(),
            LiveView::Lines { .. } => {}
        }
    }
}

/// How following the deployments ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowEnd {
    /// Every expected deployment is Ready.
    AllReady,
    /// The time ran out first.
    TimedOut,
    /// The watch stream ended (the API server went away).
    StreamEnded,
}

/// Watches every MCPDeployment and shows the `expected` ones until all are Ready or `timeout`
/// (wall time) passes.
pub async fn follow(
    api: Api<MCPDeployment>,
    expected: &[String],
    timeout: Duration,
    view: &mut LiveView,
) -> FollowEnd {
    let mut latest: BTreeMap<String, MCPDeployment> = BTreeMap::new();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    let watch = async {
        while let Some(next) = stream.next().await {
            // Watch errors are retried by the backoff; a stream error only skips an event.
            let Ok(deployment) = next else { continue };
            let key = key_of(&deployment.metadata);
            if !expected.contains(&key) {
                continue;
            }
            view.update(&key, &progress_row(&deployment));
            latest.insert(key, deployment);
            if expected.iter().all(|k| latest.get(k).is_some_and(is_ready)) {
                return FollowEnd::AllReady;
            }
        }
        FollowEnd::StreamEnded
    };
    let end = tokio::time::timeout(timeout, watch)
        .await
        .unwrap_or(FollowEnd::TimedOut);
    view.finish();
    end
}
