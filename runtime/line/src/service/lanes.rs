//! The inspection lanes: threads that each own a frame path (a fork of the calibration's
//! [`Inspector`], the compiled graphs shared) and score the frames the worker hands them. A
//! triggered line has one lane (one part in flight); a free-running box has one per part it may
//! have in flight, so a 2-core box scores two frames at once. A lane sends what it scored to the
//! collector ([`super::keep`]), which hands verdicts on in the parts' order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use edge_ad_core::decision::decide;
use edge_ad_core::pipeline::Inspector;
use edge_ad_core::preprocess::CropGeometry;
use image::RgbImage;

use super::keep::Keep;
use super::worker::{source_error, Done, Job, Scored};

/// A grabbed frame for a lane.
pub(super) struct Frame {
    /// The part's place in the order verdicts go out (the worker's count of parts).
    pub seq: u64,
    pub job: Job,
    pub name: String,
    pub image: RgbImage,
    /// The threshold in force when the frame was grabbed.
    pub threshold: f32,
    /// The source had no more frames after this one.
    pub last: bool,
    /// Which parts to keep the frame and anomaly map of, for the overlay (archive, display or
    /// live view).
    pub keep: Keep,
}

/// What a lane is asked to do, in order.
pub(super) enum LaneWork {
    /// Score the next frames with this frame path (a new calibration, or the first).
    Use(Box<Inspector>),
    /// Score a frame.
    Part(Box<Frame>),
}

/// A part's frame and map for the overlay, after its verdict is out.
pub(super) struct Kept {
    pub frame: RgbImage,
    pub map: Vec<f32>,
    pub side: u32,
    pub geometry: CropGeometry,
    pub scored: Scored,
}

/// One part done (or not), for the collector.
pub(super) struct Outcome {
    pub seq: u64,
    pub done: Done,
    pub kept: Option<Kept>,
}

/// A lane as the worker sees it.
pub(super) struct Lane<'scope> {
    work: Sender<LaneWork>,
    /// Parts handed to it and not yet scored.
    queued: Arc<AtomicUsize>,
    thread: ScopedJoinHandle<'scope, ()>,
}

impl<'scope> Lane<'scope> {
    /// Starts lane `index`; it sends what it scores to `outcomes`.
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        index: usize,
        outcomes: Sender<Outcome>,
    ) -> std::io::Result<Self> {
        let (work, jobs) = channel::<LaneWork>();
        let queued = Arc::new(AtomicUsize::new(0));
        let count = queued.clone();
        let thread = std::thread::Builder::new().name(format!("inspect-{index}")).spawn_scoped(scope, move || {
            let mut inspector: Option<Inspector> = None;
            for work in jobs {
                match work {
                    LaneWork::Use(i) => inspector = Some(*i),
                    LaneWork::Part(frame) => {
                        let outcome = score(inspector.as_mut(), *frame);
                        count.fetch_sub(1, Ordering::SeqCst);
                        if outcomes.send(outcome).is_err() {
                            break;
                        }
                    }
                }
            }
        })?;
        Ok(Self { work, queued, thread })
    }

    /// Parts handed to this lane and not yet scored.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Hands the lane work; `false` when the lane is gone (it panicked).
    pub fn send(&self, work: LaneWork) -> bool {
        let part = matches!(work, LaneWork::Part(_));
        if part {
            self.queued.fetch_add(1, Ordering::SeqCst);
        }
        let sent = self.work.send(work).is_ok();
        if part && !sent {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
        sent
    }

    /// Whether the lane's thread has ended (it only ends early by a panic).
    pub fn has_ended(&self) -> bool {
        self.thread.is_finished()
    }
}

/// The lane with the fewest parts waiting, the first of them on a tie.
pub(super) fn least_busy<'a, 'scope>(lanes: &'a [Lane<'scope>]) -> Option<&'a Lane<'scope>> {
    lanes.iter().min_by_key(|l| l.queued())
}

/// Scores one frame; a frame path that is not there yet, or fails, is an error (then NG).
fn score(inspector: Option<&mut Inspector>, frame: Frame) -> Outcome {
    let Frame { seq, job, name, image, threshold, last, keep } = frame;
    let done = |result, latency_ms| Done { id: job.id, frame: name, result, latency_ms, last, no_frame: false };
    let Some(inspector) = inspector else {
        return Outcome { seq, done: done(Err(source_error("the frame path is not ready")), 0.0), kept: None };
    };
    let inspection = inspector.inspect(&image);
    let latency_ms = job.triggered.elapsed().as_secs_f64() * 1e3;
    match inspection {
        Ok(i) => {
            let scored = Scored { verdict: decide(i.score, threshold), score: i.score, threshold };
            let kept = keep.keeps(scored.verdict).then(|| Kept {
                frame: image,
                map: inspector.map().to_vec(),
                side: inspector.working_side(),
                geometry: i.geometry,
                scored,
            });
            Outcome { seq, done: done(Ok(scored), latency_ms), kept }
        }
        Err(e) => Outcome { seq, done: done(Err(e), latency_ms), kept: None },
    }
}
