//! The live view: a kube watcher on MCPDeployments feeding a bar per deployment (indicatif) on
//! a terminal, or one plain line per change of step otherwise. What a row says comes from
//! [`super::progress`]; this module only does the I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::progress::{ProgressRow, bar_message, change_line, is_ready, progress_row};
use crate::api::deployment::MCPDeployment;

/// Prints notes (faults injected, milestones) without tearing the bars.
#[derive(Clone)]
pub enum Notes {
    /// Above the bars.
    Bars(MultiProgress),
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
    /// One line per change of step or state.
    Lines {
        /// Start of the demo, for the time prefix.
        start: Instant,
        /// The last row printed per deployment.
        last: HashMap<String, ProgressRow>,
    },
}

impl LiveView {
    /// Bars when `terminal`, plain lines otherwise, for the deployments `keys`.
    pub fn new(keys: &[String], terminal: bool) -> Self {
        if !terminal {
            return LiveView::Lines {
                start: Instant::now(),
                last: HashMap::new(),
            };
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
        if let LiveView::Bars { bars, .. } = self {
            for bar in bars.values() {
                bar.abandon();
            }
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
            let key = format!(
                "{}/{}",
                deployment
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or("default"),
                deployment.metadata.name.as_deref().unwrap_or_default()
            );
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
