//! What starts an inspection: an edge on a GPIO input, a line on standard input, a line on a
//! local socket, or a Modbus coil write, each on its own thread sending [`Signal`]s into one
//! channel. (Free-run needs no
//! thread: the service triggers itself whenever it is READY.) The PLC's acknowledge input comes
//! through the same channel.

use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::time::Duration;

use crate::config::{Edge, LineConfig, TriggerConfig};
use crate::error::{Error, Result};

/// An input from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Inspect a part.
    Trigger,
    /// The PLC acknowledged the result shown.
    Acknowledge,
    /// The input is gone (standard input closed, a GPIO read failed), with nothing more to come.
    Closed,
}

/// How often blocking waits wake up to notice that the receiver is gone.
const WAKE: Duration = Duration::from_millis(200);

/// Starts the thread(s) for `config`, sending into `tx` (tagged with `wrap`). Free-run starts
/// nothing and returns `false`; the others return `true`.
pub fn spawn<E: Send + 'static>(config: &TriggerConfig, tx: Sender<E>, wrap: fn(Signal) -> E) -> Result<bool> {
    match config {
        TriggerConfig::FreeRun { .. } => Ok(false),
        TriggerConfig::Stdin => {
            thread("trigger-stdin", move || {
                if forward_lines(std::io::stdin().lock(), &tx, wrap) {
                    let _ = tx.send(wrap(Signal::Closed));
                }
            })?;
            Ok(true)
        }
        TriggerConfig::Socket { path } => {
            socket(path, tx, wrap)?;
            Ok(true)
        }
        // The Modbus server (crate::plant) sends these triggers.
        TriggerConfig::Modbus => Ok(true),
        #[cfg(target_os = "linux")]
        TriggerConfig::Gpio { chip, line, edge, debounce_ms } => {
            let input = crate::linux::gpio::EdgeInput::open(chip, line, *edge, Duration::from_millis(*debounce_ms))
                .map_err(|e| Error::Trigger(e.to_string()))?;
            edges(input, tx, wrap, Signal::Trigger)?;
            Ok(true)
        }
        #[cfg(not(target_os = "linux"))]
        TriggerConfig::Gpio { .. } => Err(Error::Trigger("trigger.kind = \"gpio\" needs Linux".into())),
    }
}

/// Starts the thread reading the PLC's acknowledge input `ack` on `chip`.
#[cfg(target_os = "linux")]
pub fn spawn_acknowledge<E: Send + 'static>(
    chip: &Path,
    ack: &LineConfig,
    tx: Sender<E>,
    wrap: fn(Signal) -> E,
) -> Result<()> {
    let edge: Edge = crate::linux::gpio::EdgeInput::on_edge(ack.active);
    let input = crate::linux::gpio::EdgeInput::open(chip, &ack.line, edge, Duration::ZERO)
        .map_err(|e| Error::Trigger(format!("plc.ack: {e}")))?;
    edges(input, tx, wrap, Signal::Acknowledge)
}

#[cfg(target_os = "linux")]
fn edges<E: Send + 'static>(
    input: crate::linux::gpio::EdgeInput,
    tx: Sender<E>,
    wrap: fn(Signal) -> E,
    on_edge: Signal,
) -> Result<()> {
    thread("trigger-gpio", move || loop {
        match input.wait(WAKE) {
            Ok(true) => {
                if tx.send(wrap(on_edge)).is_err() {
                    return;
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!("{e}");
                let _ = tx.send(wrap(Signal::Closed));
                return;
            }
        }
    })
}

/// Longest line read from a trigger input; a longer one ends the input (a runaway writer).
const MAX_LINE: usize = 256;
/// Clients the trigger socket serves at once; more are turned away.
const MAX_CLIENTS: usize = 8;

/// Forwards the signals of `input`'s lines into `tx` until it ends, a read fails or a line is
/// longer than [`MAX_LINE`]. `false` when the receiver is gone.
fn forward_lines<E>(mut input: impl BufRead, tx: &Sender<E>, wrap: fn(Signal) -> E) -> bool {
    let mut line = Vec::with_capacity(MAX_LINE + 1);
    loop {
        line.clear();
        match (&mut input).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return true,
            Ok(_) if line.len() > MAX_LINE => {
                tracing::warn!("trigger input: a line longer than {MAX_LINE} bytes; closing this input");
                return true;
            }
            Ok(_) => {}
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            tracing::warn!("trigger input: ignoring a line that is not UTF-8");
            continue;
        };
        if let Some(s) = parse_line(text) {
            if tx.send(wrap(s)).is_err() {
                return false;
            }
        }
    }
}

/// `trigger` or an empty line triggers, `ack` acknowledges; anything else is ignored with a warning.
fn parse_line(line: &str) -> Option<Signal> {
    match line.trim() {
        "" | "trigger" | "t" => Some(Signal::Trigger),
        "ack" => Some(Signal::Acknowledge),
        other => {
            tracing::warn!("trigger input: ignoring {other:?} (expected `trigger`, an empty line or `ack`)");
            None
        }
    }
}

fn socket<E: Send + 'static>(path: &Path, tx: Sender<E>, wrap: fn(Signal) -> E) -> Result<()> {
    use std::os::unix::net::UnixListener;
    // A socket file left by an earlier run is replaced; anything else at the path is refused.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(Error::bad_file(path, "exists and is not a socket; trigger.path must name a socket"));
        }
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::io(path, e))?;
    // Only the box's own user may trigger parts, whatever the umask.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| Error::io(path, e))?;
    }
    let clients = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    thread("trigger-socket", move || {
        use std::sync::atomic::Ordering;
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                clients.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!("trigger socket: more than {MAX_CLIENTS} clients; turning one away");
                continue;
            }
            let (tx, held) = (tx.clone(), clients.clone());
            let started = thread("trigger-client", move || {
                forward_lines(std::io::BufReader::new(stream), &tx, wrap);
                held.fetch_sub(1, Ordering::SeqCst);
            });
            if started.is_err() {
                clients.fetch_sub(1, Ordering::SeqCst);
            }
        }
    })
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|source| Error::Thread { name: name.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn socket_lines_trigger_and_acknowledge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge-ad.sock");
        let (tx, rx) = std::sync::mpsc::channel();
        let started = spawn(&TriggerConfig::Socket { path: path.clone() }, tx, |s| s).unwrap();
        assert!(started);
        let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        client.write_all(b"trigger\nbogus\nack\n\n").unwrap();
        let got: Vec<Signal> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
        assert_eq!(got, [Signal::Trigger, Signal::Acknowledge, Signal::Trigger]);
    }

    #[test]
    fn the_socket_is_private_bounded_in_clients_and_in_line_length() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge-ad.sock");
        let (tx, rx) = std::sync::mpsc::channel();
        spawn(&TriggerConfig::Socket { path: path.clone() }, tx, |s| s).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the box's user may trigger");
        // A runaway writer: its input is closed after MAX_LINE bytes without a newline, and
        // nothing it wrote triggers.
        let mut runaway = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let _ = runaway.write_all(&vec![b'x'; 64 * 1024]);
        let _ = runaway.write_all(b"\ntrigger\n");
        // Idle clients fill the pool; the one past it is turned away, the pool's still work.
        std::thread::sleep(Duration::from_millis(200));
        let idle: Vec<_> = (0..MAX_CLIENTS).map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut extra = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let _ = extra.write_all(b"trigger\n");
        assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "nothing from the runaway or the extra client");
        let mut first = &idle[0];
        first.write_all(b"trigger\n").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Signal::Trigger);
    }

    #[test]
    fn a_non_socket_at_the_socket_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain-file");
        std::fs::write(&path, "keep me").unwrap();
        let (tx, _rx) = std::sync::mpsc::channel::<Signal>();
        let e = spawn(&TriggerConfig::Socket { path: path.clone() }, tx, |s| s).unwrap_err().to_string();
        assert!(e.contains("plain-file") && e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me", "nothing lost");
        let (tx, _rx) = std::sync::mpsc::channel::<Signal>();
        assert!(!spawn(&TriggerConfig::FreeRun { interval_ms: 0, in_flight: None }, tx, |s| s).unwrap());
    }
}
