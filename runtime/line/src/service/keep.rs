//! The collector: it takes what the lanes ([`super::lanes`]) scored, hands each part's verdict to
//! the main loop in the parts' order (whichever lane finished first), and only then draws the
//! overlay for the archive, the display and the web page's live view.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use edge_ad_core::decision::Verdict;

use super::lanes::{Kept, Outcome};
use super::worker::{Display, Report, Scored};
use crate::archive::{Archive, Entry};
use crate::overlay::Caption;
use crate::plant::web::{LiveFrame, LiveView};

/// Which parts are worth keeping, decided per frame when it is grabbed ([`KeepRule::now`]).
#[derive(Clone)]
pub(super) struct KeepRule {
    /// Every part (the display shows each one; sampled OK parts are counted here).
    every: bool,
    /// NG parts (the archive).
    ng: bool,
    /// The web page's live view, which takes a frame now and then.
    live: Option<LiveView>,
}

impl KeepRule {
    /// What to keep of the part grabbed now.
    pub fn now(&self) -> Keep {
        Keep { every: self.every || self.live.as_ref().is_some_and(LiveView::wants), ng: self.ng }
    }
}

/// Which of a part's outcomes the lane keeps for the collector.
#[derive(Clone, Copy, Debug)]
pub(super) struct Keep {
    every: bool,
    ng: bool,
}

impl Keep {
    /// Whether a part with `verdict` is kept.
    pub fn keeps(self, verdict: Verdict) -> bool {
        self.every || (self.ng && verdict == Verdict::Ng)
    }
}

/// Where kept parts go.
pub(super) struct Collector {
    pub footer: Arc<Mutex<String>>,
    pub archive: Option<Archive>,
    pub display: Option<Box<dyn Display>>,
    /// The web page's live view (drawn when the page asks for it, not here).
    pub live: Option<LiveView>,
    /// Every how many OK parts one is archived (0: none).
    pub ok_every: u64,
    pub ok_seen: u64,
}

impl Collector {
    /// Which parts the lanes keep (copy the frame and map of) for this collector.
    pub fn keep_rule(&self) -> KeepRule {
        KeepRule {
            every: self.display.is_some() || (self.archive.is_some() && self.ok_every > 0),
            ng: self.archive.is_some(),
            live: self.live.clone(),
        }
    }

    /// Hands verdicts on in order until every lane and the worker are gone (or the main loop
    /// is), then lets the archive write what is queued.
    pub fn run<E>(mut self, outcomes: Receiver<Outcome>, events: Sender<E>, wrap: fn(Report) -> E) {
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        'parts: for outcome in outcomes {
            pending.insert(outcome.seq, outcome);
            while let Some(Outcome { done, kept, .. }) = pending.remove(&next) {
                next += 1;
                let (id, name) = (done.id, done.frame.clone());
                if events.send(wrap(Report::Done(done))).is_err() {
                    break 'parts;
                }
                if let Some(kept) = kept {
                    self.keep(id, &name, kept);
                }
            }
        }
        if let Some(a) = self.archive.take() {
            a.finish();
        }
    }

    fn keep(&mut self, id: u32, name: &str, kept: Kept) {
        let Kept { frame, map, side, geometry, scored } = kept;
        let Scored { verdict, score, threshold } = scored;
        let sampled = verdict == Verdict::Ok && self.ok_every > 0 && {
            self.ok_seen += 1;
            self.ok_seen.is_multiple_of(self.ok_every)
        };
        let archived = self.archive.is_some() && (verdict == Verdict::Ng || sampled);
        let live = self.live.as_ref().filter(|l| l.wants());
        if !archived && self.display.is_none() && live.is_none() {
            return;
        }
        let footer = self.footer.lock().map(|f| f.clone()).unwrap_or_default();
        let at_source = (archived || self.display.is_some())
            .then(|| edge_ad_core::output::map_at_source(&map, side, &geometry).ok())
            .flatten();
        if let Some(live) = live {
            // Copies only: the page's request draws it, off the frame path.
            let caption = (verdict, score, threshold, footer.clone());
            live.offer(LiveFrame { frame: frame.clone(), map, side, geometry, caption });
        }
        if !archived && self.display.is_none() {
            return;
        }
        let caption = Caption { verdict: Some(verdict), score, threshold, footer: &footer };
        let overlay = crate::overlay::draw(&frame, at_source.as_deref(), &caption);
        if let Some(d) = &self.display {
            if let Err(e) = d.show(&overlay) {
                tracing::warn!("display: {e}");
            }
        }
        if let (true, Some(archive)) = (archived, &self.archive) {
            let stamp = super::unix_ms();
            let stem = format!("{stamp:013}-{id:08}-{}", verdict.as_str());
            let sidecar = crate::archive::Sidecar {
                part: id,
                frame: name.to_string(),
                verdict: verdict.as_str(),
                score: score.is_finite().then_some(score),
                threshold,
                time_unix_ms: stamp as u64,
            };
            if !archive.offer(Entry { stem, image: overlay, sidecar }) {
                tracing::warn!("archive: writer behind, part {id} not kept ({} dropped)", archive.dropped());
            }
        }
    }
}
