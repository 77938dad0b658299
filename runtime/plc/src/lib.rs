//! edge-ad-plc: the PLC handshake of an edge-ad box, a pure state machine over clock readings and
//! output pins (`no_std`, embedded-hal only, so it also builds for an MCU I/O board).
//!
//! It owns no thread, timer or device. The caller passes the time (microseconds on a monotonic
//! clock) into every call, and drives it with four inputs: a trigger, a verdict for the part in
//! flight, a fault (or its end) and an acknowledge. [`Handshake::poll`] applies what is due and says
//! when to call it next. The pins are `embedded_hal::digital::OutputPin`s, so the same logic drives
//! Linux GPIO lines (edge-ad-line's `linux::gpio`) or an MCU I/O board; only `core` is used here.
//!
//! The rules, after the conventions of commercial vision sensors:
//! - READY is on only when no fault is latched, no part is in flight and no result is shown.
//! - BUSY is on while a part is in flight (trigger → verdict).
//! - A result is OK or NG together with RESULT-VALID, for a pulse width or until the PLC
//!   acknowledges. In fixed-offset mode it is shown at trigger + offset; a verdict that has not come
//!   by then is NG and counted late (the late verdict is dropped).
//! - A part in flight past the deadline is a fault ("stalled").
//! - A fault (and start-up and shut-down) is the safe state: READY, BUSY, OK, NG and RESULT-VALID
//!   off, ERROR on. A result not yet shown when a fault comes is never shown.
//! - A trigger while not READY is missed: counted, and pulsed on the MISSED line when there is one.
//!
//! A free-running box (no trigger from the PLC: it starts the next part itself) may pipeline:
//! [`Handshake::with_depth`] lets up to that many parts be in flight at once. Their verdicts
//! may come in any order; results are still shown one at a time, in trigger order, each after the
//! one before it has been held (pulse or acknowledge) and the lines have then stayed off for
//! [`Timing::gap`], so that the PLC sees every result's edges. BUSY is then on while any part
//! awaits its verdict, and READY still means nothing in flight and nothing shown. A fault drops
//! the verdicts not yet shown; [`Handshake::unshown`] names those parts. With a depth of 1 (the
//! default, and the rule for a triggered line) every rule above holds unchanged.

#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

use embedded_hal::digital::OutputPin;
use heapless::Vec;

/// Time in microseconds on a monotonic clock (the caller's).
pub type Micros = u64;

/// Which electrical level means "on" for a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// On is high.
    ActiveHigh,
    /// On is low.
    ActiveLow,
}

/// One output line: a pin and what level means on.
pub struct Line<P> {
    pin: P,
    polarity: Polarity,
    on: bool,
}

impl<P: OutputPin> Line<P> {
    /// A line that is not yet driven (the first [`Handshake::start`] drives every line).
    pub fn new(pin: P, polarity: Polarity) -> Self {
        Self { pin, polarity, on: false }
    }

    /// Whether the line was last driven on.
    pub fn is_on(&self) -> bool {
        self.on
    }

    fn drive(&mut self, on: bool) -> Result<(), P::Error> {
        let high = on == (self.polarity == Polarity::ActiveHigh);
        if high {
            self.pin.set_high()?;
        } else {
            self.pin.set_low()?;
        }
        self.on = on;
        Ok(())
    }
}

/// The output lines to the PLC. Any line may be absent (not wired).
pub struct Outputs<P> {
    /// Can accept a trigger.
    pub ready: Option<Line<P>>,
    /// A part is in flight.
    pub busy: Option<Line<P>>,
    /// Strobe: OK/NG are valid while this is on.
    pub result_valid: Option<Line<P>>,
    /// Good part.
    pub ok: Option<Line<P>>,
    /// Defective part, late result.
    pub ng: Option<Line<P>>,
    /// Fault latched (safe state).
    pub error: Option<Line<P>>,
    /// Pulsed when a trigger is missed.
    pub missed: Option<Line<P>>,
}

impl<P> Outputs<P> {
    /// No lines at all (a box without a PLC: records only).
    pub fn none() -> Self {
        Self { ready: None, busy: None, result_valid: None, ok: None, ng: None, error: None, missed: None }
    }
}

/// Which output lines are on (logically, before polarity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStates {
    /// READY.
    pub ready: bool,
    /// BUSY.
    pub busy: bool,
    /// RESULT-VALID.
    pub result_valid: bool,
    /// OK.
    pub ok: bool,
    /// NG.
    pub ng: bool,
    /// ERROR.
    pub error: bool,
    /// MISSED.
    pub missed: bool,
}

/// How long a result stays on the lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// OK/NG and RESULT-VALID are pulses of these widths.
    Pulse {
        /// Width of an OK pulse.
        ok: Micros,
        /// Width of an NG pulse.
        ng: Micros,
    },
    /// OK/NG and RESULT-VALID stay on until [`Handshake::acknowledge`].
    UntilAcknowledged,
}

/// Timing of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How results are held.
    pub hold: Hold,
    /// `Some(T)`: every result is shown at trigger + T (late ⇒ NG). `None`: as soon as it is known.
    pub fixed_offset: Option<Micros>,
    /// A part in flight longer than this is a stall: a fault.
    pub deadline: Micros,
    /// Width of the MISSED pulse.
    pub missed_pulse: Micros,
    /// With more than one part in flight: how long the result lines stay off between two
    /// results (a PLC scanning every few milliseconds must see VALID fall between them).
    pub gap: Micros,
}

/// A verdict the handshake can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// OK.
    Ok,
    /// NG.
    Ng,
}

/// Why the lines are in the safe state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Not started yet, or shut down.
    Stopped,
    /// The camera (or other frame source) is gone or gives no frames.
    Camera,
    /// The model or the frame path failed.
    Model,
    /// No usable calibration.
    Calibration,
    /// A part was in flight past the deadline.
    Stalled,
    /// An output line could not be driven.
    Output,
}

/// What happened to a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// Accepted: inspect the part and report its verdict with this id.
    Accepted(u32),
    /// Not READY (busy, showing a result, or faulted): counted as missed.
    Missed,
}

/// What happened to a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictOutcome {
    /// Shown now.
    Shown,
    /// Pipelined parts only: known, and shown once the results of the parts triggered before it
    /// have been shown and held.
    Queued,
    /// Held until the fixed offset.
    Held,
    /// Too late: NG was already shown at the offset (or the part had stalled).
    Late,
    /// No such part in flight (an old id, or a fault cleared it): ignored.
    Stale,
}

/// Something [`Handshake::poll`] did that the caller should count or log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The fixed offset passed without a verdict: NG was shown for part `id`.
    Late(u32),
    /// Part `id` passed the deadline: the lines are in the safe state.
    Stalled(u32),
}

/// Parts in flight at most ([`Handshake::with_depth`]).
pub const MAX_DEPTH: usize = 8;

#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: u32,
    triggered: Micros,
    /// NG was already shown for it (fixed-offset mode, late).
    late: bool,
    /// Its verdict, known and waiting for the results before it (pipelined parts only).
    verdict: Option<Shown>,
}

#[derive(Clone, Copy, Debug)]
enum ResultState {
    None,
    /// A verdict waiting for the fixed offset.
    Held {
        id: u32,
        shown: Shown,
        due: Micros,
    },
    /// On the lines; `until: None` means until acknowledged.
    Showing {
        shown: Shown,
        until: Option<Micros>,
    },
    /// The lines off between two pipelined results, until then.
    Gap {
        until: Micros,
    },
}

/// The result of driving pins: the pins' own error type.
pub type PinResult<P> = Result<(), <P as embedded_hal::digital::ErrorType>::Error>;

/// The handshake state machine. See the module documentation for the rules.
pub struct Handshake<P> {
    out: Outputs<P>,
    timing: Timing,
    fault: Option<Fault>,
    /// The parts in flight, in trigger order.
    parts: Vec<InFlight, MAX_DEPTH>,
    /// Parts that may be in flight at once.
    depth: usize,
    result: ResultState,
    missed_until: Option<Micros>,
    next_id: u32,
    /// The parts whose verdicts were known but not shown when the last fault came.
    unshown: Vec<u32, MAX_DEPTH>,
}

impl<P: OutputPin> Handshake<P> {
    /// A handshake in the [`Fault::Stopped`] safe state; nothing is driven until [`Self::start`].
    pub fn new(out: Outputs<P>, timing: Timing) -> Self {
        Self {
            out,
            timing,
            fault: Some(Fault::Stopped),
            parts: Vec::new(),
            depth: 1,
            result: ResultState::None,
            missed_until: None,
            next_id: 0,
            unshown: Vec::new(),
        }
    }

    /// Lets up to `depth` parts (1 to [`MAX_DEPTH`]) be in flight at once: for a box that
    /// triggers itself (free-run), never for a PLC's trigger, whose rule is one part per READY.
    /// A fixed result offset keeps the depth at 1 (a result due at trigger + offset cannot wait
    /// behind the one before it).
    pub fn with_depth(mut self, depth: usize) -> Self {
        self.depth = if self.timing.fixed_offset.is_some() { 1 } else { depth.clamp(1, MAX_DEPTH) };
        self
    }

    /// Parts that may be in flight at once.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Drives every line to the safe state. Call once at start; then [`Self::clear_fault`] when the
    /// box can inspect.
    pub fn start(&mut self) -> PinResult<P> {
        self.enter_safe(Fault::Stopped)
    }

    /// The latched fault, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Whether READY is on.
    pub fn is_ready(&self) -> bool {
        self.fault.is_none() && self.parts.is_empty() && matches!(self.result, ResultState::None)
    }

    /// Whether a trigger now would be accepted: READY with a depth of 1; with more, no fault and
    /// fewer parts in flight than the depth.
    pub fn accepts(&self) -> bool {
        if self.depth == 1 {
            self.is_ready()
        } else {
            self.fault.is_none() && self.parts.len() < self.depth
        }
    }

    /// The parts whose verdicts were known (queued behind others, or held for the offset) but
    /// never shown, because the last fault dropped them: the caller records them, since the PLC
    /// saw no result for them. Each fault (and shut-down) replaces the list; the fault's end
    /// empties it.
    pub fn unshown(&self) -> &[u32] {
        &self.unshown
    }

    /// Whether a part awaits its verdict (BUSY).
    fn awaiting(&self) -> bool {
        self.parts.iter().any(|p| p.verdict.is_none())
    }

    /// The output lines (to read their state).
    pub fn outputs(&self) -> &Outputs<P> {
        &self.out
    }

    /// Which lines the state machine has on, whether or not they are wired (what a fieldbus
    /// mirror of the lines reports). MISSED is on only while its pulse runs on a wired line.
    pub fn lines(&self) -> LineStates {
        let shown = match self.result {
            ResultState::Showing { shown, .. } => Some(shown),
            _ => None,
        };
        LineStates {
            ready: self.is_ready(),
            busy: self.awaiting(),
            result_valid: shown.is_some(),
            ok: shown == Some(Shown::Ok),
            ng: shown == Some(Shown::Ng),
            error: self.fault.is_some(),
            missed: self.missed_until.is_some(),
        }
    }

    /// A trigger edge at `now`.
    pub fn trigger(&mut self, now: Micros) -> Result<TriggerOutcome, <P as embedded_hal::digital::ErrorType>::Error> {
        let part = InFlight { id: self.next_id, triggered: now, late: false, verdict: None };
        // The depth is at most the list's room, so an accepted part always fits.
        if !self.accepts() || self.parts.push(part).is_err() {
            if let Some(l) = self.out.missed.as_mut() {
                l.drive(true)?;
                self.missed_until = Some(now.saturating_add(self.timing.missed_pulse));
            }
            return Ok(TriggerOutcome::Missed);
        }
        let id = part.id;
        self.next_id = self.next_id.wrapping_add(1);
        set(&mut self.out.ready, false)?;
        set(&mut self.out.busy, true)?;
        Ok(TriggerOutcome::Accepted(id))
    }

    /// The verdict for part `id`, known at `now`.
    pub fn verdict(
        &mut self,
        now: Micros,
        id: u32,
        shown: Shown,
    ) -> Result<VerdictOutcome, <P as embedded_hal::digital::ErrorType>::Error> {
        let found = self.parts.iter().position(|p| p.id == id && p.verdict.is_none());
        let index = match found {
            Some(i) if self.fault.is_none() => i,
            _ => return Ok(VerdictOutcome::Stale),
        };
        if self.parts[index].late {
            self.parts.remove(index);
            let busy = self.awaiting();
            set(&mut self.out.busy, busy)?;
            self.settle(now)?;
            return Ok(VerdictOutcome::Late);
        }
        self.parts[index].verdict = Some(shown);
        let busy = self.awaiting();
        set(&mut self.out.busy, busy)?;
        self.advance(now)?;
        // Where the verdict went: shown or held if it left the flight, else queued behind others.
        if self.parts.iter().any(|p| p.id == id) {
            return Ok(VerdictOutcome::Queued);
        }
        Ok(match self.result {
            ResultState::Held { .. } => VerdictOutcome::Held,
            _ => VerdictOutcome::Shown,
        })
    }

    /// Takes part `id`, still awaiting its verdict, out of the flight with no result shown: for
    /// a box that triggers itself and then finds no frame for the part (a replayed folder ran
    /// out), so there was no part. Nothing goes OK; the parts behind it move up. Returns whether
    /// the part was in flight.
    pub fn withdraw(&mut self, now: Micros, id: u32) -> Result<bool, <P as embedded_hal::digital::ErrorType>::Error> {
        let Some(index) = self.parts.iter().position(|p| p.id == id && p.verdict.is_none()) else {
            return Ok(false);
        };
        self.parts.remove(index);
        let busy = self.awaiting();
        set(&mut self.out.busy, busy)?;
        self.advance(now)?;
        self.settle(now)?;
        Ok(true)
    }

    /// While the result lines are free and the oldest part in flight has its verdict: shows it
    /// (or holds it for the fixed offset). Returns whether it put a result up.
    fn advance(&mut self, now: Micros) -> Result<bool, <P as embedded_hal::digital::ErrorType>::Error> {
        if !matches!(self.result, ResultState::None) {
            return Ok(false);
        }
        let Some(shown) = self.parts.first().and_then(|p| p.verdict) else { return Ok(false) };
        let part = self.parts.remove(0);
        match self.timing.fixed_offset {
            Some(offset) if now < part.triggered.saturating_add(offset) => {
                self.result = ResultState::Held { id: part.id, shown, due: part.triggered.saturating_add(offset) };
            }
            _ => self.show(now, shown)?,
        }
        Ok(true)
    }

    /// The PLC acknowledged the result shown (hold-until-acknowledged mode).
    pub fn acknowledge(&mut self, now: Micros) -> PinResult<P> {
        if let ResultState::Showing { until: None, .. } = self.result {
            self.clear_result(now)?;
            self.advance(now)?;
        }
        Ok(())
    }

    /// A fault: the safe state, latched until [`Self::clear_fault`]. The part in flight and
    /// any held result are dropped.
    pub fn set_fault(&mut self, fault: Fault) -> PinResult<P> {
        self.enter_safe(fault)
    }

    /// The fault is over: READY again (when nothing else holds it off).
    pub fn clear_fault(&mut self, now: Micros) -> PinResult<P> {
        if self.fault.is_some() {
            self.fault = None;
            self.unshown.clear();
            set(&mut self.out.error, false)?;
            self.settle(now)?;
        }
        Ok(())
    }

    /// Shut down: the safe state.
    pub fn shutdown(&mut self) -> PinResult<P> {
        self.enter_safe(Fault::Stopped)
    }

    /// Applies what is due at `now`: held results, pulse ends, late and stalled parts. Returns
    /// what happened, if anything, and the next time to call it (`None`: nothing pending).
    pub fn poll(
        &mut self,
        now: Micros,
    ) -> Result<(Option<Notice>, Option<Micros>), <P as embedded_hal::digital::ErrorType>::Error> {
        let mut notice = None;
        if let Some(until) = self.missed_until {
            if now >= until {
                set(&mut self.out.missed, false)?;
                self.missed_until = None;
            }
        }
        let deadline = self.timing.deadline;
        let stalled = self.parts.iter().find(|p| p.verdict.is_none() && now >= p.triggered.saturating_add(deadline));
        if let Some(part) = stalled.copied() {
            self.enter_safe(Fault::Stalled)?;
            return Ok((Some(Notice::Stalled(part.id)), self.next_due()));
        }
        // A fixed offset keeps the depth at 1: the part in flight is the only one.
        if let (Some(offset), Some(&part)) = (self.timing.fixed_offset, self.parts.first()) {
            if !part.late && part.verdict.is_none() && now >= part.triggered.saturating_add(offset) {
                // Fail-safe: the result is due and not known, so the part is NG.
                self.parts[0].late = true;
                self.show(now, Shown::Ng)?;
                notice = Some(Notice::Late(part.id));
            }
        }
        // Each pass ends a result or puts the next one up, so this ends within the depth's
        // passes (zero-width pulses put up and end several results at one time).
        loop {
            let state = self.result;
            match state {
                ResultState::Held { shown, due, .. } if now >= due => self.show(now, shown)?,
                ResultState::Showing { until: Some(until), .. } if now >= until => self.clear_result(now)?,
                ResultState::Gap { until } if now >= until => {
                    self.result = ResultState::None;
                    self.settle(now)?;
                }
                ResultState::None => {
                    if !self.advance(now)? {
                        break;
                    }
                }
                _ => break,
            }
        }
        Ok((notice, self.next_due()))
    }

    fn next_due(&self) -> Option<Micros> {
        let mut due: Option<Micros> = self.missed_until;
        let mut at = |t: Micros| due = Some(due.map_or(t, |d| d.min(t)));
        for part in self.parts.iter().filter(|p| p.verdict.is_none()) {
            at(part.triggered.saturating_add(self.timing.deadline));
            if let (Some(offset), false) = (self.timing.fixed_offset, part.late) {
                at(part.triggered.saturating_add(offset));
            }
        }
        match self.result {
            ResultState::Held { due, .. } => at(due),
            ResultState::Showing { until: Some(until), .. } => at(until),
            ResultState::Gap { until } => at(until),
            _ => {}
        }
        due
    }

    fn show(&mut self, now: Micros, shown: Shown) -> PinResult<P> {
        if self.fault.is_some() {
            return Ok(());
        }
        let (on, off, width) = match (shown, self.timing.hold) {
            (Shown::Ok, Hold::Pulse { ok, .. }) => (&mut self.out.ok, &mut self.out.ng, Some(ok)),
            (Shown::Ng, Hold::Pulse { ng, .. }) => (&mut self.out.ng, &mut self.out.ok, Some(ng)),
            (Shown::Ok, Hold::UntilAcknowledged) => (&mut self.out.ok, &mut self.out.ng, None),
            (Shown::Ng, Hold::UntilAcknowledged) => (&mut self.out.ng, &mut self.out.ok, None),
        };
        set(off, false)?;
        set(on, true)?;
        set(&mut self.out.result_valid, true)?;
        self.result = ResultState::Showing { shown, until: width.map(|w| now.saturating_add(w)) };
        Ok(())
    }

    fn clear_result(&mut self, now: Micros) -> PinResult<P> {
        set(&mut self.out.result_valid, false)?;
        set(&mut self.out.ok, false)?;
        set(&mut self.out.ng, false)?;
        // With one part in flight the PLC's next trigger keeps results apart; with more, the
        // next result could follow at once.
        self.result = if self.depth > 1 && self.timing.gap > 0 {
            ResultState::Gap { until: now.saturating_add(self.timing.gap) }
        } else {
            ResultState::None
        };
        self.settle(now)
    }

    /// READY follows the state after a change.
    fn settle(&mut self, _now: Micros) -> PinResult<P> {
        let ready = self.is_ready();
        set(&mut self.out.ready, ready)
    }

    fn enter_safe(&mut self, fault: Fault) -> PinResult<P> {
        // What had a verdict but never reached the lines: the caller records it.
        // (A held result exists only with one part in flight, so they all fit.)
        let held = match self.result {
            ResultState::Held { id, .. } => Some(id),
            _ => None,
        };
        let known = self.parts.iter().filter(|p| p.verdict.is_some()).map(|p| p.id);
        self.unshown.clear();
        for id in held.into_iter().chain(known) {
            if self.unshown.push(id).is_err() {
                break;
            }
        }
        self.fault = Some(fault);
        self.parts.clear();
        self.result = ResultState::None;
        // OK first: whatever fails after this, OK is already off.
        set(&mut self.out.ok, false)?;
        set(&mut self.out.ready, false)?;
        set(&mut self.out.result_valid, false)?;
        set(&mut self.out.ng, false)?;
        set(&mut self.out.busy, false)?;
        set(&mut self.out.missed, false)?;
        self.missed_until = None;
        set(&mut self.out.error, true)
    }
}

fn set<P: OutputPin>(line: &mut Option<Line<P>>, on: bool) -> PinResult<P> {
    match line {
        Some(l) => l.drive(on),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::vec::Vec;

    /// A pin that records its level; shared so the test can read it back.
    #[derive(Clone)]
    struct TestPin(Rc<RefCell<Option<bool>>>, Rc<RefCell<bool>>);

    #[derive(Debug)]
    struct Broken;
    impl embedded_hal::digital::Error for Broken {
        fn kind(&self) -> embedded_hal::digital::ErrorKind {
            embedded_hal::digital::ErrorKind::Other
        }
    }
    impl embedded_hal::digital::ErrorType for TestPin {
        type Error = Broken;
    }
    impl OutputPin for TestPin {
        fn set_low(&mut self) -> Result<(), Broken> {
            if *self.1.borrow() {
                return Err(Broken);
            }
            *self.0.borrow_mut() = Some(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Broken> {
            if *self.1.borrow() {
                return Err(Broken);
            }
            *self.0.borrow_mut() = Some(true);
            Ok(())
        }
    }

    const MS: Micros = 1000;
    const NAMES: [&str; 7] = ["ready", "busy", "valid", "ok", "ng", "error", "missed"];

    struct Bench {
        hs: Handshake<TestPin>,
        levels: Vec<Rc<RefCell<Option<bool>>>>,
        broken: Rc<RefCell<bool>>,
    }

    impl Bench {
        /// Every line wired; NG active-low to check polarity.
        fn new(timing: Timing) -> Self {
            let broken = Rc::new(RefCell::new(false));
            let levels: Vec<_> = (0..7).map(|_| Rc::new(RefCell::new(None))).collect();
            let line = |i: usize| {
                let polarity = if NAMES[i] == "ng" { Polarity::ActiveLow } else { Polarity::ActiveHigh };
                Some(Line::new(TestPin(levels[i].clone(), broken.clone()), polarity))
            };
            let out = Outputs {
                ready: line(0),
                busy: line(1),
                result_valid: line(2),
                ok: line(3),
                ng: line(4),
                error: line(5),
                missed: line(6),
            };
            let mut hs = Handshake::new(out, timing);
            assert!(levels.iter().all(|l| l.borrow().is_none()), "nothing driven before start");
            hs.start().unwrap();
            Self { hs, levels, broken }
        }

        /// The same bench with its handshake changed by `f` (e.g. a depth), restarted.
        fn rebuilt(b: Self, f: impl FnOnce(Handshake<TestPin>) -> Handshake<TestPin>) -> Self {
            let Self { hs, levels, broken } = b;
            let mut hs = f(hs);
            hs.start().unwrap();
            Self { hs, levels, broken }
        }

        /// The lines that are on, by name (electrical level translated through polarity). Every
        /// call also checks that [`Handshake::lines`] says the same as the pins.
        fn on(&self) -> Vec<&'static str> {
            let on: Vec<&'static str> = (0..7)
                .filter(|&i| {
                    let high = self.levels[i].borrow().expect("every line driven");
                    if NAMES[i] == "ng" {
                        !high
                    } else {
                        high
                    }
                })
                .map(|i| NAMES[i])
                .collect();
            let l = self.hs.lines();
            let logical = [l.ready, l.busy, l.result_valid, l.ok, l.ng, l.error, l.missed];
            let logical: Vec<&'static str> = (0..7).filter(|&i| logical[i]).map(|i| NAMES[i]).collect();
            assert_eq!(logical, on, "lines() follows the pins");
            on
        }
    }

    fn pulse(ok: Micros, ng: Micros) -> Timing {
        Timing { hold: Hold::Pulse { ok, ng }, fixed_offset: None, deadline: 500 * MS, missed_pulse: 10 * MS, gap: 0 }
    }

    #[test]
    fn starts_safe_then_ready_and_pulses_a_verdict_for_its_width() {
        let mut b = Bench::new(pulse(20 * MS, 30 * MS));
        assert_eq!(b.on(), ["error"], "start is the safe state");
        assert_eq!(b.hs.poll(0).unwrap(), (None, None));
        b.hs.clear_fault(0).unwrap();
        assert_eq!(b.on(), ["ready"]);
        let TriggerOutcome::Accepted(id) = b.hs.trigger(100 * MS).unwrap() else { panic!("ready") };
        assert_eq!(b.on(), ["busy"]);
        assert_eq!(b.hs.poll(101 * MS).unwrap(), (None, Some(600 * MS)), "next: the deadline");
        assert_eq!(b.hs.verdict(140 * MS, id, Shown::Ng).unwrap(), VerdictOutcome::Shown);
        assert_eq!(b.on(), ["valid", "ng"]);
        assert_eq!(b.hs.poll(169 * MS).unwrap(), (None, Some(170 * MS)));
        assert_eq!(b.on(), ["valid", "ng"], "still within the 30 ms NG pulse");
        b.hs.poll(170 * MS).unwrap();
        assert_eq!(b.on(), ["ready"]);
        let TriggerOutcome::Accepted(id2) = b.hs.trigger(200 * MS).unwrap() else { panic!("ready") };
        assert_ne!(id, id2);
        b.hs.verdict(210 * MS, id2, Shown::Ok).unwrap();
        assert_eq!(b.on(), ["valid", "ok"]);
        b.hs.poll(229 * MS).unwrap();
        assert_eq!(b.on(), ["valid", "ok"]);
        b.hs.poll(230 * MS).unwrap();
        assert_eq!(b.on(), ["ready"], "the OK pulse is 20 ms");
    }

    #[test]
    fn a_trigger_while_busy_or_showing_is_missed_and_pulsed() {
        let mut b = Bench::new(pulse(20 * MS, 20 * MS));
        b.hs.clear_fault(0).unwrap();
        let TriggerOutcome::Accepted(id) = b.hs.trigger(0).unwrap() else { panic!() };
        assert_eq!(b.hs.trigger(5 * MS).unwrap(), TriggerOutcome::Missed);
        assert_eq!(b.on(), ["busy", "missed"]);
        b.hs.poll(15 * MS).unwrap();
        assert_eq!(b.on(), ["busy"], "the missed pulse is 10 ms");
        b.hs.verdict(16 * MS, id, Shown::Ok).unwrap();
        assert_eq!(b.hs.trigger(17 * MS).unwrap(), TriggerOutcome::Missed, "showing a result is not ready");
        b.hs.set_fault(Fault::Camera).unwrap();
        assert_eq!(b.hs.trigger(18 * MS).unwrap(), TriggerOutcome::Missed, "a fault is not ready");
    }

    #[test]
    fn fixed_offset_holds_early_results_and_shows_ng_when_late() {
        let mut t = pulse(10 * MS, 10 * MS);
        t.fixed_offset = Some(60 * MS);
        let mut b = Bench::new(t);
        b.hs.clear_fault(0).unwrap();
        // Early: held until trigger + 60 ms.
        let TriggerOutcome::Accepted(id) = b.hs.trigger(1000 * MS).unwrap() else { panic!() };
        assert_eq!(b.hs.verdict(1035 * MS, id, Shown::Ok).unwrap(), VerdictOutcome::Held);
        assert_eq!(b.on(), Vec::<&str>::new(), "not ready, not busy, nothing shown yet");
        assert_eq!(b.hs.poll(1059 * MS).unwrap(), (None, Some(1060 * MS)));
        b.hs.poll(1060 * MS).unwrap();
        assert_eq!(b.on(), ["valid", "ok"]);
        b.hs.poll(1070 * MS).unwrap();
        assert_eq!(b.on(), ["ready"]);
        // A fault while a result is held: never shown, and named.
        let TriggerOutcome::Accepted(held) = b.hs.trigger(1500 * MS).unwrap() else { panic!() };
        assert_eq!(b.hs.verdict(1510 * MS, held, Shown::Ok).unwrap(), VerdictOutcome::Held);
        b.hs.set_fault(Fault::Camera).unwrap();
        assert_eq!(b.hs.unshown(), [held]);
        b.hs.poll(1560 * MS).unwrap();
        assert_eq!(b.on(), ["error"]);
        b.hs.clear_fault(1600 * MS).unwrap();
        assert!(b.hs.unshown().is_empty(), "the fault's end empties the list");
        // Late: NG at the offset, the late OK is dropped.
        let TriggerOutcome::Accepted(id) = b.hs.trigger(2000 * MS).unwrap() else { panic!() };
        assert_eq!(b.hs.poll(2060 * MS).unwrap().0, Some(Notice::Late(id)));
        assert_eq!(b.on(), ["busy", "valid", "ng"]);
        b.hs.poll(2070 * MS).unwrap();
        assert_eq!(b.on(), ["busy"], "the pulse ends; the part is still in flight");
        assert_eq!(b.hs.verdict(2080 * MS, id, Shown::Ok).unwrap(), VerdictOutcome::Late);
        assert_eq!(b.on(), ["ready"], "a late OK is never shown");
    }

    #[test]
    fn a_stalled_part_is_a_fault_and_its_verdict_never_shows() {
        let mut b = Bench::new(pulse(10 * MS, 10 * MS));
        b.hs.clear_fault(0).unwrap();
        let TriggerOutcome::Accepted(id) = b.hs.trigger(0).unwrap() else { panic!() };
        assert_eq!(b.hs.poll(499 * MS).unwrap().0, None);
        assert_eq!(b.hs.poll(500 * MS).unwrap().0, Some(Notice::Stalled(id)));
        assert_eq!(b.hs.fault(), Some(Fault::Stalled));
        assert_eq!(b.on(), ["error"]);
        assert_eq!(b.hs.verdict(600 * MS, id, Shown::Ok).unwrap(), VerdictOutcome::Stale);
        assert_eq!(b.on(), ["error"], "no OK after a fault");
        b.hs.clear_fault(700 * MS).unwrap();
        assert_eq!(b.on(), ["ready"]);
    }

    #[test]
    fn a_fault_while_showing_ok_turns_ok_off_at_once_and_drops_held_results() {
        let mut b = Bench::new(pulse(50 * MS, 50 * MS));
        b.hs.clear_fault(0).unwrap();
        let TriggerOutcome::Accepted(id) = b.hs.trigger(0).unwrap() else { panic!() };
        b.hs.verdict(10 * MS, id, Shown::Ok).unwrap();
        assert_eq!(b.on(), ["valid", "ok"]);
        b.hs.set_fault(Fault::Camera).unwrap();
        assert_eq!(b.on(), ["error"]);
        b.hs.poll(100 * MS).unwrap();
        assert_eq!(b.on(), ["error"]);

        let mut t = pulse(10 * MS, 10 * MS);
        t.fixed_offset = Some(60 * MS);
        let mut b = Bench::new(t);
        b.hs.clear_fault(0).unwrap();
        let TriggerOutcome::Accepted(id) = b.hs.trigger(0).unwrap() else { panic!() };
        assert_eq!(b.hs.verdict(10 * MS, id, Shown::Ok).unwrap(), VerdictOutcome::Held);
        b.hs.set_fault(Fault::Model).unwrap();
        b.hs.clear_fault(20 * MS).unwrap();
        b.hs.poll(60 * MS).unwrap();
        assert_eq!(b.on(), ["ready"], "the held OK from before the fault is never shown");
    }

    #[test]
    fn hold_until_acknowledged_keeps_the_result_until_the_plc_acks() {
        let mut t = pulse(0, 0);
        t.hold = Hold::UntilAcknowledged;
        let mut b = Bench::new(t);
        b.hs.clear_fault(0).unwrap();
        b.hs.acknowledge(1).unwrap();
        assert_eq!(b.on(), ["ready"], "an acknowledge with nothing shown does nothing");
        let TriggerOutcome::Accepted(id) = b.hs.trigger(0).unwrap() else { panic!() };
        b.hs.verdict(10 * MS, id, Shown::Ng).unwrap();
        assert_eq!(b.hs.poll(10_000 * MS).unwrap(), (None, None));
        assert_eq!(b.on(), ["valid", "ng"]);
        b.hs.acknowledge(10_001 * MS).unwrap();
        assert_eq!(b.on(), ["ready"]);
    }

    #[test]
    fn a_pin_that_cannot_be_driven_is_an_error_and_ok_is_driven_off_first() {
        let mut b = Bench::new(pulse(10 * MS, 10 * MS));
        b.hs.clear_fault(0).unwrap();
        *b.broken.borrow_mut() = true;
        assert!(b.hs.trigger(0).is_err());
        assert!(b.hs.set_fault(Fault::Output).is_err());
        assert_eq!(b.hs.fault(), Some(Fault::Output));
        *b.broken.borrow_mut() = false;
        b.hs.set_fault(Fault::Output).unwrap();
        assert_eq!(b.on(), ["error"]);
    }

    #[test]
    fn pipelined_parts_show_in_trigger_order_one_result_at_a_time() {
        let mut t = pulse(20 * MS, 30 * MS);
        t.gap = 5 * MS;
        let mut b = Bench::rebuilt(Bench::new(t), |hs| hs.with_depth(3));
        assert_eq!(b.hs.depth(), 3);
        b.hs.clear_fault(0).unwrap();
        let accept = |b: &mut Bench, at| match b.hs.trigger(at).unwrap() {
            TriggerOutcome::Accepted(id) => id,
            TriggerOutcome::Missed => panic!("depth 3 accepts a part at {at}"),
        };
        let (a, c, d) = (accept(&mut b, 0), accept(&mut b, 5 * MS), accept(&mut b, 10 * MS));
        assert_eq!(b.on(), ["busy"]);
        assert!(!b.hs.accepts());
        assert_eq!(b.hs.trigger(11 * MS).unwrap(), TriggerOutcome::Missed, "a fourth is one too many");
        b.hs.poll(30 * MS).unwrap();
        // The third and the second finish first: nothing shows before the first's result.
        assert_eq!(b.hs.verdict(31 * MS, d, Shown::Ok).unwrap(), VerdictOutcome::Queued);
        assert_eq!(b.hs.verdict(32 * MS, c, Shown::Ng).unwrap(), VerdictOutcome::Queued);
        assert_eq!(b.on(), ["busy"], "the first part still awaits its verdict");
        assert_eq!(b.hs.verdict(32 * MS, c, Shown::Ok).unwrap(), VerdictOutcome::Stale, "one verdict a part");
        assert_eq!(b.hs.verdict(40 * MS, a, Shown::Ok).unwrap(), VerdictOutcome::Shown);
        assert_eq!(b.on(), ["valid", "ok"], "the first part's OK, BUSY off: every verdict is known");
        assert!(b.hs.accepts(), "room for another part while results are shown");
        assert_eq!(b.hs.poll(59 * MS).unwrap(), (None, Some(60 * MS)));
        assert_eq!(b.hs.poll(60 * MS).unwrap(), (None, Some(65 * MS)));
        assert_eq!(b.on(), Vec::<&str>::new(), "the lines off for the gap: the PLC sees VALID fall");
        b.hs.poll(65 * MS).unwrap();
        assert_eq!(b.on(), ["valid", "ng"], "then the second's NG, for its own width");
        b.hs.poll(94 * MS).unwrap();
        assert_eq!(b.on(), ["valid", "ng"]);
        b.hs.poll(95 * MS).unwrap();
        assert_eq!(b.on(), Vec::<&str>::new());
        b.hs.poll(100 * MS).unwrap();
        assert_eq!(b.on(), ["valid", "ok"], "then the third's OK");
        b.hs.poll(120 * MS).unwrap();
        assert_eq!(b.on(), Vec::<&str>::new(), "a gap after the last result too: READY after it");
        b.hs.poll(125 * MS).unwrap();
        assert_eq!(b.on(), ["ready"]);
        assert_eq!(b.hs.poll(126 * MS).unwrap(), (None, None));
    }

    #[test]
    fn pipelined_parts_stall_each_on_its_own_deadline_and_a_fault_drops_them_all() {
        let mut b = Bench::rebuilt(Bench::new(pulse(10 * MS, 10 * MS)), |hs| hs.with_depth(2));
        b.hs.clear_fault(0).unwrap();
        let TriggerOutcome::Accepted(a) = b.hs.trigger(0).unwrap() else { panic!() };
        let TriggerOutcome::Accepted(c) = b.hs.trigger(100 * MS).unwrap() else { panic!() };
        assert_eq!(b.hs.verdict(50 * MS, a, Shown::Ok).unwrap(), VerdictOutcome::Shown);
        b.hs.poll(60 * MS).unwrap();
        assert_eq!(b.on(), ["busy"]);
        assert_eq!(b.hs.poll(599 * MS).unwrap(), (None, Some(600 * MS)), "the second's deadline, not the first's");
        assert_eq!(b.hs.poll(600 * MS).unwrap().0, Some(Notice::Stalled(c)));
        assert_eq!(b.on(), ["error"]);
        // A fault drops a queued verdict as it drops the parts in flight.
        b.hs.clear_fault(700 * MS).unwrap();
        let TriggerOutcome::Accepted(e) = b.hs.trigger(700 * MS).unwrap() else { panic!() };
        let TriggerOutcome::Accepted(f) = b.hs.trigger(701 * MS).unwrap() else { panic!() };
        assert_eq!(b.hs.verdict(702 * MS, f, Shown::Ok).unwrap(), VerdictOutcome::Queued);
        assert!(b.hs.unshown().is_empty(), "{:?}", b.hs.unshown());
        b.hs.set_fault(Fault::Camera).unwrap();
        assert_eq!(b.hs.unshown(), [f], "the queued verdict never reached the lines: named");
        b.hs.clear_fault(703 * MS).unwrap();
        assert_eq!(b.hs.verdict(704 * MS, e, Shown::Ok).unwrap(), VerdictOutcome::Stale);
        b.hs.poll(800 * MS).unwrap();
        assert_eq!(b.on(), ["ready"], "the queued OK from before the fault is never shown");
    }

    #[test]
    fn pipelined_results_wait_for_the_acknowledge_and_zero_pulses_drain_at_once() {
        let mut t = pulse(0, 0);
        t.hold = Hold::UntilAcknowledged;
        t.gap = 5 * MS;
        let mut b = Bench::rebuilt(Bench::new(t), |hs| hs.with_depth(2));
        b.hs.clear_fault(0).unwrap();
        let TriggerOutcome::Accepted(a) = b.hs.trigger(0).unwrap() else { panic!() };
        let TriggerOutcome::Accepted(c) = b.hs.trigger(1).unwrap() else { panic!() };
        b.hs.verdict(10 * MS, a, Shown::Ng).unwrap();
        assert_eq!(b.hs.verdict(11 * MS, c, Shown::Ok).unwrap(), VerdictOutcome::Queued);
        assert_eq!(b.hs.poll(10_000 * MS).unwrap(), (None, None));
        assert_eq!(b.on(), ["valid", "ng"], "held until acknowledged");
        b.hs.acknowledge(10_001 * MS).unwrap();
        assert_eq!(b.on(), Vec::<&str>::new(), "VALID falls on the acknowledge");
        assert_eq!(b.hs.poll(10_002 * MS).unwrap(), (None, Some(10_006 * MS)));
        b.hs.poll(10_006 * MS).unwrap();
        assert_eq!(b.on(), ["valid", "ok"], "the next result goes up after the gap");
        b.hs.acknowledge(10_007 * MS).unwrap();
        b.hs.poll(10_012 * MS).unwrap();
        assert_eq!(b.on(), ["ready"]);

        let mut b = Bench::rebuilt(Bench::new(pulse(0, 0)), |hs| hs.with_depth(4));
        b.hs.clear_fault(0).unwrap();
        let ids: Vec<u32> = (0..4)
            .map(|k| match b.hs.trigger(k).unwrap() {
                TriggerOutcome::Accepted(id) => id,
                TriggerOutcome::Missed => panic!(),
            })
            .collect();
        for &id in ids.iter().rev() {
            b.hs.verdict(10, id, Shown::Ok).unwrap();
        }
        b.hs.poll(10).unwrap();
        assert_eq!(b.on(), ["ready"], "zero-width results all shown and ended in one poll");
    }

    #[test]
    fn a_withdrawn_part_shows_nothing_and_the_next_one_moves_up() {
        let mut b = Bench::rebuilt(Bench::new(pulse(10 * MS, 10 * MS)), |hs| hs.with_depth(3));
        b.hs.clear_fault(0).unwrap();
        let ids: Vec<u32> = (0..3)
            .map(|k| match b.hs.trigger(k).unwrap() {
                TriggerOutcome::Accepted(id) => id,
                TriggerOutcome::Missed => panic!(),
            })
            .collect();
        assert_eq!(b.hs.verdict(5 * MS, ids[1], Shown::Ok).unwrap(), VerdictOutcome::Queued);
        // The oldest part had no frame: withdrawn, the one behind it goes up at once.
        assert!(b.hs.withdraw(6 * MS, ids[0]).unwrap());
        assert_eq!(b.on(), ["busy", "valid", "ok"]);
        assert!(!b.hs.withdraw(6 * MS, ids[1]).unwrap(), "a part with its verdict is not withdrawn");
        assert!(b.hs.withdraw(7 * MS, ids[2]).unwrap());
        assert_eq!(b.on(), ["valid", "ok"], "no part awaits a verdict: BUSY off");
        assert!(!b.hs.withdraw(7 * MS, ids[2]).unwrap(), "gone already");
        b.hs.poll(20 * MS).unwrap();
        assert_eq!(b.on(), ["ready"]);
    }

    #[test]
    fn a_fixed_offset_keeps_one_part_in_flight_and_depth_is_bounded() {
        let mut t = pulse(10 * MS, 10 * MS);
        t.fixed_offset = Some(60 * MS);
        let hs: Handshake<TestPin> = Handshake::new(Outputs::none(), t).with_depth(4);
        assert_eq!(hs.depth(), 1);
        let hs: Handshake<TestPin> = Handshake::new(Outputs::none(), pulse(0, 0)).with_depth(100);
        assert_eq!(hs.depth(), MAX_DEPTH);
        let mut hs: Handshake<TestPin> = Handshake::new(Outputs::none(), pulse(0, 0)).with_depth(0);
        assert_eq!(hs.depth(), 1);
        hs.start().unwrap();
        hs.clear_fault(0).unwrap();
        assert!(matches!(hs.trigger(0).unwrap(), TriggerOutcome::Accepted(_)));
        assert!(!hs.accepts());
        assert_eq!(hs.trigger(1).unwrap(), TriggerOutcome::Missed);
    }

    #[test]
    fn without_lines_the_state_machine_still_decides() {
        let mut hs: Handshake<TestPin> = Handshake::new(Outputs::none(), pulse(10 * MS, 10 * MS));
        hs.start().unwrap();
        assert!(!hs.is_ready());
        hs.clear_fault(0).unwrap();
        assert!(hs.is_ready());
        assert!(matches!(hs.trigger(0).unwrap(), TriggerOutcome::Accepted(_)));
        assert!(!hs.is_ready());
        let l = hs.lines();
        assert!(l.busy && !l.ready && !l.error, "unwired lines are still reported: {l:?}");
    }
}
