//! Frames on several workers, results in input order.
//!
//! One frame per core beats splitting one frame's work across cores on a net this small
//! (`shared/reference/tract-speed.md`): each worker owns a frame path ([`crate::pipeline::Inspector::fork`],
//! the compiled graphs shared) and takes the next item when it is free; results are handed on in
//! the items' order, so records and verdicts come out exactly as one worker would give them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

/// Worker count by default: one per core this process may use.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Runs `work` on every item of `items`, on one thread per element of `states` (each thread owns
/// its state), and hands each result to `deliver` in the items' order. With one state the work
/// runs on the calling thread. The first error from `deliver` stops handing out items and is
/// returned once the workers are done; results already made after it are dropped. `states` must
/// not be empty (callers make at least one worker): with none, no item is worked.
pub fn in_order<S, T, R, E>(
    states: &mut [S],
    items: impl Iterator<Item = T> + Send,
    work: impl Fn(&mut S, T) -> R + Sync,
    mut deliver: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E>
where
    S: Send,
    T: Send,
    R: Send,
{
    if let [only] = states {
        for item in items {
            deliver(work(only, item))?;
        }
        return Ok(());
    }
    let queue = Mutex::new(items.enumerate());
    let stop = AtomicBool::new(false);
    // Bounded: a worker waits rather than run far ahead of the one whose result is next.
    let (tx, rx) = mpsc::sync_channel::<(usize, R)>(states.len().max(1) * 2);
    std::thread::scope(|scope| {
        for state in states.iter_mut() {
            let (tx, queue, work, stop) = (tx.clone(), &queue, &work, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A poisoned queue (a worker panicked while taking an item) ends this worker too.
                    let next = match queue.lock() {
                        Ok(mut q) => q.next(),
                        Err(_) => None,
                    };
                    let Some((index, item)) = next else { break };
                    if tx.send((index, work(state, item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut next = 0usize;
        let mut outcome = Ok(());
        for (index, result) in rx {
            pending.insert(index, result);
            while let Some(result) = pending.remove(&next) {
                next += 1;
                if outcome.is_ok() {
                    outcome = deliver(result);
                    if outcome.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_input_order_whatever_the_worker_timing() {
        for workers in [1, 2, 3, 5] {
            let mut states: Vec<usize> = vec![0; workers];
            let mut seen = Vec::new();
            // Later items finish sooner, so workers finish out of order.
            let r: Result<(), ()> = in_order(
                &mut states,
                0..40u64,
                |done, i| {
                    std::thread::sleep(std::time::Duration::from_micros((40 - i) * 50));
                    *done += 1;
                    i * i
                },
                |v| {
                    seen.push(v);
                    Ok(())
                },
            );
            assert!(r.is_ok());
            assert_eq!(seen, (0..40u64).map(|i| i * i).collect::<Vec<_>>(), "{workers} workers");
            assert_eq!(states.iter().sum::<usize>(), 40, "every item was worked once");
        }
    }

    #[test]
    fn a_delivery_error_stops_the_run_and_is_returned() {
        let mut states = vec![(); 2];
        let mut delivered = 0;
        let r = in_order(
            &mut states,
            0..1000,
            |_, i| i,
            |i| {
                delivered += 1;
                if i == 5 {
                    Err("sink full")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r, Err("sink full"));
        assert_eq!(delivered, 6, "nothing is delivered after the error");
    }

    #[test]
    fn no_items_deliver_nothing() {
        let r: Result<(), ()> = in_order(&mut [0u8; 2], std::iter::empty::<u8>(), |_, i| i, |_| panic!("no items"));
        assert!(r.is_ok());
    }
}
