//! The Modbus TCP server: input registers (and the same values as holding registers) mirror the
//! PLC lines, the last result and the counters from the [`Board`]; discrete inputs mirror the
//! lines; coil 0 triggers (with `trigger.kind = "modbus"`) and coil 1 acknowledges. The register
//! map is [`registers`] and the README's *Modbus TCP* table.

use std::future::{ready, Ready};
use std::sync::{Arc, Mutex};

use edge_ad_core::decision::Verdict;
use edge_ad_plc::Fault;
use tokio_modbus::prelude::{ExceptionCode, Request, Response};

use super::{Board, Signaller};
use crate::trigger::Signal;

/// How many registers the map has (addresses 0 to `REGISTERS - 1`).
pub const REGISTERS: usize = 27;
/// How many discrete inputs (the lines, in the order of register 0's bits).
pub const DISCRETE_INPUTS: usize = 7;
/// Coil 0: a write of 1 triggers a part.
pub const COIL_TRIGGER: u16 = 0;
/// Coil 1: a write of 1 acknowledges the result shown.
pub const COIL_ACKNOWLEDGE: u16 = 1;
/// The most registers or bits one request may read (the Modbus limits for registers and coils).
const MAX_REGISTERS: u16 = 125;
const MAX_BITS: u16 = 2000;

/// The lines as bits: READY, BUSY, RESULT-VALID, OK, NG, ERROR, MISSED (bit 0 first).
fn line_bits(board: &Board) -> [bool; DISCRETE_INPUTS] {
    let l = board.lines;
    [l.ready, l.busy, l.result_valid, l.ok, l.ng, l.error, l.missed]
}

/// The fault as a number: 0 none, 1 stopped, 2 camera, 3 model, 4 calibration, 5 stalled, 6 output.
fn fault_code(fault: Option<Fault>) -> u16 {
    match fault {
        None => 0,
        Some(Fault::Stopped) => 1,
        Some(Fault::Camera) => 2,
        Some(Fault::Model) => 3,
        Some(Fault::Calibration) => 4,
        Some(Fault::Stalled) => 5,
        Some(Fault::Output) => 6,
    }
}

/// The register map: what registers 0.. hold for `board`. 32-bit values take two registers,
/// high word first; scores are IEEE-754 f32 (NaN: the part could not be scored); counts are the
/// low 32 bits of the box's counters.
pub fn registers(board: &Board) -> [u16; REGISTERS] {
    let mut r = [0u16; REGISTERS];
    r[0] = line_bits(board).iter().enumerate().fold(0, |bits, (i, &on)| bits | (u16::from(on) << i));
    r[1] = fault_code(board.fault);
    r[2] = match board.verdict {
        None => 0,
        Some(Verdict::Ok) => 1,
        Some(Verdict::Ng) => 2,
    };
    let mut put = |at: usize, v: u32| {
        r[at] = (v >> 16) as u16;
        r[at + 1] = v as u16;
    };
    put(3, board.results);
    put(5, board.part);
    put(7, board.score.to_bits());
    put(9, board.threshold.to_bits());
    let c = &board.counts;
    for (i, n) in [c.ok, c.ng, c.triggers, c.missed, c.late, c.errors, c.faults, c.mqtt_dropped].into_iter().enumerate()
    {
        put(11 + 2 * i, n as u32);
    }
    r
}

/// The `count` items of `all` from `start`, or the exception for a range outside the map.
fn window<T: Copy>(all: &[T], start: u16, count: u16, max: u16) -> Result<Vec<T>, ExceptionCode> {
    if count == 0 || count > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let (start, end) = (usize::from(start), usize::from(start) + usize::from(count));
    all.get(start..end).map(<[T]>::to_vec).ok_or(ExceptionCode::IllegalDataAddress)
}

/// One client's view of the box (every connection gets a clone).
#[derive(Clone)]
pub struct Registers {
    pub(super) board: Arc<Mutex<Board>>,
    /// Sends signals to the service's main loop.
    pub(super) send: Signaller,
    /// Coil 0 triggers (the configured trigger is Modbus).
    pub(super) triggers: bool,
}

impl Registers {
    fn answer(&self, request: Request<'_>) -> Result<Response, ExceptionCode> {
        // Read under the lock, copied out: the main loop waits at most this long.
        let read = |f: fn(&Board) -> Vec<u16>| {
            self.board.lock().map(|b| f(&b)).map_err(|_| ExceptionCode::ServerDeviceFailure)
        };
        let bits = || self.board.lock().map(|b| line_bits(&b)).map_err(|_| ExceptionCode::ServerDeviceFailure);
        match request {
            Request::ReadInputRegisters(at, n) => {
                Ok(Response::ReadInputRegisters(window(&read(|b| registers(b).to_vec())?, at, n, MAX_REGISTERS)?))
            }
            Request::ReadHoldingRegisters(at, n) => {
                Ok(Response::ReadHoldingRegisters(window(&read(|b| registers(b).to_vec())?, at, n, MAX_REGISTERS)?))
            }
            Request::ReadDiscreteInputs(at, n) => Ok(Response::ReadDiscreteInputs(window(&bits()?, at, n, MAX_BITS)?)),
            // The coils are commands: they always read 0.
            Request::ReadCoils(at, n) => Ok(Response::ReadCoils(window(&[false; 2], at, n, MAX_BITS)?)),
            Request::WriteSingleCoil(at, on) => {
                self.command(at, on)?;
                Ok(Response::WriteSingleCoil(at, on))
            }
            Request::WriteMultipleCoils(at, ref values) => {
                let _ = window(&[false; 2], at, values.len().try_into().unwrap_or(u16::MAX), MAX_BITS)?;
                for (i, &on) in values.iter().enumerate() {
                    self.command(at + i as u16, on)?;
                }
                Ok(Response::WriteMultipleCoils(at, values.len() as u16))
            }
            Request::WriteSingleRegister(..)
            | Request::WriteMultipleRegisters(..)
            | Request::MaskWriteRegister(..)
            | Request::ReadWriteMultipleRegisters(..) => Err(ExceptionCode::IllegalDataAddress),
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }

    /// A coil write: 1 on the trigger or acknowledge coil sends that signal; 0 does nothing.
    fn command(&self, coil: u16, on: bool) -> Result<(), ExceptionCode> {
        let signal = match coil {
            COIL_TRIGGER if self.triggers => Signal::Trigger,
            COIL_ACKNOWLEDGE => Signal::Acknowledge,
            _ => return Err(ExceptionCode::IllegalDataAddress),
        };
        if on && !(self.send)(signal) {
            return Err(ExceptionCode::ServerDeviceFailure);
        }
        Ok(())
    }
}

/// Clients served at once; more are turned away (a PLC and a SCADA poller or two is the use).
pub const MAX_CLIENTS: usize = 16;

/// Serves Modbus TCP on `listener` until the runtime stops. A failed accept (out of file
/// descriptors) is logged and the server goes on a second later.
pub(super) async fn serve(listener: tokio::net::TcpListener, registers: Registers) {
    let server = tokio_modbus::server::tcp::Server::new(listener);
    // Every connection's service holds a clone of this: its count is the clients connected.
    let clients = Arc::new(());
    let on_connected = |stream, address| {
        let registers = registers.clone();
        let ticket = clients.clone();
        async move {
            if Arc::strong_count(&ticket) > MAX_CLIENTS + 1 {
                tracing::warn!("modbus: {address} turned away: {MAX_CLIENTS} clients already");
                return Ok(None);
            }
            tokio_modbus::server::tcp::accept_tcp_connection(stream, address, |_| {
                Ok(Some(Client { registers: registers.clone(), _ticket: ticket.clone() }))
            })
        }
    };
    let on_error = |e: std::io::Error| tracing::debug!("modbus: a client connection ended: {e}");
    loop {
        if let Err(e) = server.serve(&on_connected, on_error).await {
            tracing::error!("modbus: accepting a client failed: {e}");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

/// One connection's service: the registers, and its place among the clients.
struct Client {
    registers: Registers,
    _ticket: Arc<()>,
}

impl tokio_modbus::server::Service for Client {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Request<'static>) -> Self::Future {
        ready(self.registers.answer(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plant::Counts;
    use edge_ad_plc::LineStates;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn board() -> Board {
        Board {
            lines: LineStates { ready: true, ng: true, missed: true, ..LineStates::default() },
            fault: Some(Fault::Calibration),
            results: 0x0001_0002,
            part: 7,
            verdict: Some(Verdict::Ng),
            score: 1.5,
            threshold: f32::NAN,
            counts: Counts { ok: 3, ng: 0x1_0000_0004, mqtt_dropped: 9, ..Counts::default() },
            ..Board::default()
        }
    }

    #[test]
    fn the_register_map_holds_lines_result_and_counts() {
        let r = registers(&board());
        assert_eq!(r[0], 0b101_0001, "READY, NG and MISSED");
        assert_eq!((r[1], r[2]), (4, 2), "calibration fault, NG");
        assert_eq!((r[3], r[4]), (1, 2), "high word first");
        assert_eq!((r[5], r[6]), (0, 7));
        assert_eq!(f32::from_bits((u32::from(r[7]) << 16) | u32::from(r[8])), 1.5);
        assert!(f32::from_bits((u32::from(r[9]) << 16) | u32::from(r[10])).is_nan());
        assert_eq!((r[11], r[12]), (0, 3), "OK count");
        assert_eq!((r[13], r[14]), (0, 4), "the low 32 bits of a count");
        assert_eq!((r[25], r[26]), (0, 9), "MQTT drops last");
    }

    #[test]
    fn requests_outside_the_map_are_exceptions_and_coils_send_signals() {
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let send: Signaller = Arc::new(move |s| {
            assert_eq!(s, Signal::Trigger);
            counter.fetch_add(1, Ordering::Relaxed);
            true
        });
        let mut regs = Registers { board: Arc::new(Mutex::new(board())), send, triggers: true };
        let Ok(Response::ReadInputRegisters(v)) = regs.answer(Request::ReadInputRegisters(25, 2)) else { panic!() };
        assert_eq!(v, [0, 9]);
        assert!(
            matches!(regs.answer(Request::ReadHoldingRegisters(0, 27)), Ok(Response::ReadHoldingRegisters(v)) if v.len() == 27)
        );
        assert_eq!(regs.answer(Request::ReadInputRegisters(26, 2)).unwrap_err(), ExceptionCode::IllegalDataAddress);
        assert_eq!(regs.answer(Request::ReadInputRegisters(0, 0)).unwrap_err(), ExceptionCode::IllegalDataValue);
        assert_eq!(
            regs.answer(Request::ReadInputRegisters(u16::MAX, 125)).unwrap_err(),
            ExceptionCode::IllegalDataAddress
        );
        let Ok(Response::ReadDiscreteInputs(bits)) = regs.answer(Request::ReadDiscreteInputs(0, 7)) else { panic!() };
        assert_eq!(bits, [true, false, false, false, true, false, true]);
        assert_eq!(regs.answer(Request::WriteSingleRegister(0, 1)).unwrap_err(), ExceptionCode::IllegalDataAddress);
        assert_eq!(regs.answer(Request::WriteSingleCoil(5, true)).unwrap_err(), ExceptionCode::IllegalDataAddress);

        regs.answer(Request::WriteSingleCoil(COIL_TRIGGER, false)).unwrap();
        assert_eq!(sent.load(Ordering::Relaxed), 0, "writing 0 does nothing");
        regs.answer(Request::WriteSingleCoil(COIL_TRIGGER, true)).unwrap();
        assert_eq!(sent.load(Ordering::Relaxed), 1);
        regs.triggers = false;
        assert_eq!(
            regs.answer(Request::WriteSingleCoil(COIL_TRIGGER, true)).unwrap_err(),
            ExceptionCode::IllegalDataAddress,
            "no Modbus triggers unless the trigger is Modbus"
        );
        assert_eq!(sent.load(Ordering::Relaxed), 1);
    }
}
