//! MQTT results: verdicts, faults, other events and counter snapshots, published as JSON with
//! QoS 1 under the box's topic prefix, through rumqttc to a real broker.
//!
//! The main loop only [`Outbox::offer`]s a message: a bounded queue that drops (and counts)
//! what does not fit, never waits. The task here hands queued messages to rumqttc a few at a
//! time and takes a message off the queue only once the broker has acknowledged it (PUBACK),
//! so a broker that goes away loses nothing that is queued: after reconnecting, whatever was
//! not acknowledged is sent again (at least once, as QoS 1 promises). The status topic is
//! retained: `online` after each connection, `offline` as the last will and on a clean stop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::Notify;

use crate::config::MqttConfig;

/// The largest message the box publishes; a larger one is dropped and counted (a record with a
/// very long error text), so that one message can never wedge the queue.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Messages handed to rumqttc and not yet acknowledged, at most.
const WINDOW: usize = 16;
/// Wait between attempts to reach the broker.
const RECONNECT: Duration = Duration::from_secs(1);
/// On a clean stop, how long queued messages may take to go out.
const FLUSH: Duration = Duration::from_secs(2);

/// One message for the broker.
#[derive(Clone, Debug)]
pub struct Message {
    /// The full topic.
    pub topic: String,
    /// JSON.
    pub payload: Vec<u8>,
    /// Kept by the broker for later subscribers (status and counters).
    pub retain: bool,
}

/// The bounded queue between the main loop and the MQTT task.
pub struct Outbox {
    queue: Mutex<VecDeque<Message>>,
    capacity: usize,
    wake: Notify,
    dropped: AtomicU64,
}

impl Outbox {
    /// An empty queue of `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self { queue: Mutex::new(VecDeque::new()), capacity, wake: Notify::new(), dropped: AtomicU64::new(0) }
    }

    /// Queues `message`; when the queue is full (the broker is away or slow) or the message is
    /// too large, drops it, counts it and returns `false`. Never blocks on the network.
    pub fn offer(&self, message: Message) -> bool {
        let queued = message.payload.len() <= MAX_MESSAGE
            && self.queue.lock().is_ok_and(|mut q| {
                let room = q.len() < self.capacity;
                if room {
                    q.push_back(message);
                }
                room
            });
        if queued {
            self.wake.notify_one();
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Messages dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Messages waiting (not yet acknowledged by the broker).
    pub fn waiting(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.len())
    }

    fn get(&self, i: usize) -> Option<Message> {
        self.queue.lock().ok().and_then(|q| q.get(i).cloned())
    }

    fn pop(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.pop_front();
        }
    }
}

/// The box's MQTT identity and topics.
#[derive(Clone, Debug)]
pub struct Topics {
    /// The client id.
    pub client_id: String,
    /// Every topic starts with this.
    pub prefix: String,
}

impl Topics {
    /// From the configuration, with the host name where it leaves the id or prefix out.
    pub fn of(config: &MqttConfig) -> Self {
        let host = host_name();
        Self {
            client_id: config.client_id.clone().unwrap_or_else(|| format!("edge-ad-{host}")),
            prefix: config.prefix.clone().unwrap_or_else(|| format!("edge-ad/{host}")),
        }
    }

    /// `<prefix>/<leaf>`.
    pub fn topic(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.prefix)
    }
}

/// This machine's host name, as a topic level (no wildcards or separators); `box` if unknown.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String =
        name.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    if name.is_empty() {
        "box".into()
    } else {
        name
    }
}

fn status(online: bool) -> Vec<u8> {
    format!(r#"{{"status":"{}"}}"#, if online { "online" } else { "offline" }).into_bytes()
}

/// A message handed to rumqttc: its packet id once rumqttc has sent it, whether the broker has
/// acknowledged it, and whether it is the queue's (else the task's own status message).
#[derive(Default)]
struct Slot {
    pkid: Option<u16>,
    acked: bool,
    queued: bool,
}

/// Runs the MQTT client until `stop` is notified; then gives the queue up to [`FLUSH`] to reach
/// the broker (reconnecting if need be), publishes `offline` and disconnects. Returns how many
/// queued messages never reached it (also counted as dropped).
pub(super) async fn run(config: MqttConfig, topics: Topics, outbox: Arc<Outbox>, stop: Arc<Notify>) -> u64 {
    let status_topic = topics.topic("status");
    let mut options = MqttOptions::new(topics.client_id.clone(), config.host.clone(), config.port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_s))
        .set_clean_session(true)
        .set_max_packet_size(2 * MAX_MESSAGE, 2 * MAX_MESSAGE)
        .set_last_will(LastWill::new(status_topic.clone(), status(false), QoS::AtLeastOnce, true));
    let (client, mut event_loop) = AsyncClient::new(options, WINDOW + 2);
    // rumqttc's event loop runs in its own task and is never cancelled part-way (a select on
    // it could drop a half-written packet); its events come here through a channel.
    let (event_tx, mut events) = tokio::sync::mpsc::channel(4 * WINDOW);
    let poller = tokio::spawn(async move {
        loop {
            let event = event_loop.poll().await;
            let failed = event.is_err();
            if event_tx.send(event).await.is_err() {
                return;
            }
            if failed {
                tokio::time::sleep(RECONNECT).await;
            }
        }
    });
    let mut window: VecDeque<Slot> = VecDeque::new();
    let mut connected = false;
    let mut stopping: Option<tokio::time::Instant> = None;
    let mut said_offline = false;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        if connected {
            hand_over(&client, &outbox, &mut window);
        }
        if let Some(deadline) = stopping {
            // Offline goes last, once everything queued is acknowledged.
            let flushed = outbox.waiting() == 0 && window.iter().all(|s| s.acked);
            if flushed && connected && !said_offline {
                said_offline = client.try_publish(&status_topic, QoS::AtLeastOnce, true, status(false)).is_ok();
                if said_offline {
                    window.push_back(Slot::default());
                    continue;
                }
            }
            if (flushed && (said_offline || !connected)) || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        tokio::select! {
            () = &mut stopped, if stopping.is_none() => stopping = Some(tokio::time::Instant::now() + FLUSH),
            () = outbox.wake.notified(), if connected => {}
            () = tokio::time::sleep(Duration::from_millis(50)), if stopping.is_some() => {}
            event = events.recv() => match event {
                None => break,
                Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    tracing::info!("mqtt: connected to {}:{} as {}", config.host, config.port, topics.client_id);
                    connected = true;
                    // A clean session: whatever was in flight goes again from the queue.
                    window.clear();
                    said_offline = false;
                    if client.try_publish(&status_topic, QoS::AtLeastOnce, true, status(true)).is_ok() {
                        window.push_back(Slot::default());
                    }
                }
                Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(slot) = window.iter_mut().find(|s| s.pkid.is_none()) {
                        slot.pkid = Some(pkid);
                    }
                }
                Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(slot) = window.iter_mut().find(|s| s.pkid == Some(ack.pkid) && !s.acked) {
                        slot.acked = true;
                    }
                    while window.front().is_some_and(|s| s.acked) {
                        if window.pop_front().is_some_and(|s| s.queued) {
                            outbox.pop();
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if connected {
                        tracing::warn!("mqtt: lost the broker at {}:{}: {e}", config.host, config.port);
                    } else {
                        tracing::debug!("mqtt: cannot reach {}:{}: {e}", config.host, config.port);
                    }
                    connected = false;
                    window.clear();
                }
            }
        }
    }
    if connected && client.try_disconnect().is_ok() {
        // Let the DISCONNECT go out (a clean end: the broker does not send the last will).
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(Ok(e)) = events.recv().await {
                if matches!(e, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    poller.abort();
    let lost = outbox.waiting() as u64;
    if lost > 0 {
        outbox.dropped.fetch_add(lost, Ordering::Relaxed);
        tracing::warn!("mqtt: {lost} messages never reached {}:{} before the stop", config.host, config.port);
    }
    lost
}

/// Hands queued messages to rumqttc while the window has room (and rumqttc's channel takes them).
fn hand_over(client: &AsyncClient, outbox: &Outbox, window: &mut VecDeque<Slot>) {
    while window.len() < WINDOW {
        let next = window.iter().filter(|s| s.queued).count();
        let Some(m) = outbox.get(next) else { return };
        if client.try_publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload).is_err() {
            return;
        }
        window.push_back(Slot { queued: true, ..Slot::default() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_and_never_blocks() {
        let outbox = Outbox::new(2);
        let m = |n: usize| Message { topic: "t".into(), payload: vec![b'x'; n], retain: false };
        assert!(outbox.offer(m(1)) && outbox.offer(m(2)));
        assert!(!outbox.offer(m(3)), "the third does not fit");
        assert_eq!((outbox.waiting(), outbox.dropped()), (2, 1));
        outbox.pop();
        assert!(!outbox.offer(m(MAX_MESSAGE + 1)), "too large");
        assert!(outbox.offer(m(MAX_MESSAGE)));
        assert_eq!((outbox.waiting(), outbox.dropped()), (2, 2));
        assert_eq!(outbox.get(0).unwrap().payload.len(), 2, "first in, first out");
    }

    #[test]
    fn topics_default_to_the_host_name() {
        let config: MqttConfig = toml::from_str("host = \"broker\"").unwrap();
        let t = Topics::of(&config);
        assert!(t.prefix.starts_with("edge-ad/") && t.prefix.len() > "edge-ad/".len(), "{}", t.prefix);
        assert!(!t.prefix["edge-ad/".len()..].contains(['/', '+', '#', ' ']), "{}", t.prefix);
        assert_eq!(t.client_id, format!("edge-ad-{}", &t.prefix["edge-ad/".len()..]));
        let config: MqttConfig = toml::from_str("host = \"b\"\nprefix = \"plant/line3/box1\"").unwrap();
        assert_eq!(Topics::of(&config).topic("verdict"), "plant/line3/box1/verdict");
    }
}
