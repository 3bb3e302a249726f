//! A client of the simulated log: sends small batches of events to any node, some of them
//! client-signed (version 2: a one-time id), and sends again what it does not know to be
//! logged, as a real client does after a timeout or a refusal. Sometimes it replays an event
//! that was acknowledged, as an attacker would.
//!
//! Every event names its client, its number and, if unsigned, the attempt (`"sim":{"a","c","e"}`),
//! so the checker can tell which attempt of which event each log entry is. A signed event is
//! sent with the same bytes every time (its signature covers them), so all its attempts are
//! attempt 0.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use graven_clock::Moment;
use graven_core::event::LOGGED_AT_PLACEHOLDER;
use graven_core::jcs::{self, Value};
use graven_engine::engine::{Entry, OnceKey};

use crate::rng::Rng;

/// One event as sent in one attempt.
#[derive(Debug, Clone)]
pub struct Sent {
    pub client: usize,
    pub event: u64,
    pub attempt: u64,
    /// `(key_id, id)` and `signed_at` of a signed event.
    pub signed: Option<((String, String), i64)>,
    /// The event with a `logged_at` placeholder at `stamp_at`.
    pub bytes: Vec<u8>,
    pub stamp_at: usize,
    pub once: Option<OnceKey>,
}

impl Sent {
    pub fn entry(&self) -> Entry {
        Entry { bytes: self.bytes.clone(), stamp_at: Some(self.stamp_at), once: self.once }
    }

    pub fn label(&self) -> String {
        match self.signed {
            Some(_) => format!("c{}e{}s", self.client, self.event),
            None => format!("c{}e{}a{}", self.client, self.event, self.attempt),
        }
    }

    /// The leaf the sequencer makes of it when it stamps `logged_at`.
    pub fn leaf(&self, logged_at: &str) -> Vec<u8> {
        let mut b = self.bytes.clone();
        assert!(graven_core::event::stamp(&mut b, self.stamp_at, logged_at));
        b
    }
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    Acked,
    /// Refused: entry `n` is a signed event the log already holds.
    Replayed(usize),
    /// Refused before anything was written (not the writer, overloaded, expired, unavailable).
    Refused,
    /// Failed in a way that leaves the outcome unknown (a storage error, a lost connection).
    Unknown,
}

#[derive(Debug)]
struct Pending {
    event: u64,
    /// The exact event, if signed (sent again byte for byte).
    signed: Option<Sent>,
}

#[derive(Debug)]
pub struct Client {
    pub id: usize,
    signer: SigningKey,
    skew: i64,
    next_event: u64,
    next_attempt: u64,
    pending: Vec<Pending>,
    pub in_flight: bool,
    pub next_at: Moment,
    pub last_ack: Option<Moment>,
    acked_signed: Vec<Sent>,
}

fn stamp_offset(bytes: &[u8]) -> usize {
    let needle = b"\"logged_at\":\"";
    bytes.windows(needle.len()).position(|w| w == needle).expect("the event has logged_at") + needle.len()
}

impl Client {
    pub fn new(id: usize, skew: i64) -> Client {
        Client {
            id,
            signer: SigningKey::from_bytes(&[id as u8 + 1; 32]),
            skew,
            next_event: 0,
            next_attempt: 0,
            pending: Vec::new(),
            in_flight: false,
            next_at: Moment::ZERO + Duration::from_millis(100 * id as u64),
            last_ack: None,
            acked_signed: Vec::new(),
        }
    }

    fn unsigned(&mut self, event: u64) -> Sent {
        let (c, a) = (self.id, self.next_attempt);
        self.next_attempt += 1;
        let text = format!(
            r#"{{"action":"sim.write","logged_at":"{LOGGED_AT_PLACEHOLDER}","resource":{{"id":"c{c}-e{event}","type":"sim"}},"sim":{{"a":{a},"c":{c},"e":{event}}}}}"#
        );
        let bytes = jcs::canonicalize(text.as_bytes()).unwrap();
        let stamp_at = stamp_offset(&bytes);
        Sent { client: c, event, attempt: a, signed: None, bytes, stamp_at, once: None }
    }

    fn signed(&self, event: u64, signed_at: i64, window: i64) -> Sent {
        let c = self.id;
        let body = format!(
            r#"{{"action":"sim.signed","resource":{{"id":"c{c}-e{event}","type":"sim"}},"sim":{{"a":0,"c":{c},"e":{event}}}}}"#
        );
        let id = format!("c{c}e{event}");
        let signed =
            graven_core::event_sig::sign_event_v2(&self.signer, body.as_bytes(), &id, signed_at).unwrap();
        let Value::Object(mut members) = jcs::parse(&signed).unwrap() else { unreachable!() };
        members.push(("logged_at".into(), Value::String(LOGGED_AT_PLACEHOLDER.into())));
        let mut bytes = Vec::new();
        Value::Object(members).write_canonical(&mut bytes);
        let stamp_at = stamp_offset(&bytes);
        let (sig, _) = graven_core::event_sig::signed_message_from_leaf(&bytes).unwrap().unwrap();
        let once = OnceKey::of(&sig, window);
        Sent {
            client: c,
            event,
            attempt: 0,
            signed: Some(((sig.key_id.clone(), id), signed_at)),
            bytes,
            stamp_at,
            once,
        }
    }

    /// The next batch (at most `max` events), at true wall-clock time `unix_micros` (the
    /// client's own clock adds its error), for a node whose clock reads `node_now_s`: what is still pending (a signed
    /// event only while the node's signature window accepts it: past it, the auth layer would
    /// refuse it, and the client drops it), or new events.
    pub fn next_batch(
        &mut self,
        rng: &mut Rng,
        unix_micros: i64,
        node_now_s: i64,
        window: i64,
        max: usize,
    ) -> Vec<Sent> {
        self.pending.retain(|p| match &p.signed {
            Some(s) => s.signed.as_ref().is_some_and(|(_, at)| (node_now_s - at).abs() <= window),
            None => true,
        });
        if self.pending.is_empty() {
            let n = rng.range(1, 4.min(max as u64));
            let my_now_s = (unix_micros + self.skew).div_euclid(1_000_000);
            for _ in 0..n {
                let event = self.next_event;
                self.next_event += 1;
                let signed = rng.chance(400).then(|| self.signed(event, my_now_s, window));
                self.pending.push(Pending { event, signed });
            }
            // A signed event made on a clock far from the node's is refused by the auth
            // layer before it reaches the engine.
            self.pending.retain(|p| match &p.signed {
                Some(s) => s.signed.as_ref().is_some_and(|(_, at)| (node_now_s - at).abs() <= window),
                None => true,
            });
        }
        let pending: Vec<(u64, Option<Sent>)> =
            self.pending.iter().take(max).map(|p| (p.event, p.signed.clone())).collect();
        pending
            .into_iter()
            .map(|(event, signed)| match signed {
                Some(s) => s,
                None => self.unsigned(event),
            })
            .collect()
    }

    /// An acknowledged signed event, sent again (to a node whose window still accepts it).
    pub fn replay(&mut self, rng: &mut Rng, node_now_s: i64, window: i64) -> Vec<Sent> {
        let fresh: Vec<&Sent> = self
            .acked_signed
            .iter()
            .filter(|s| s.signed.as_ref().is_some_and(|(_, at)| (node_now_s - at).abs() <= window))
            .collect();
        if fresh.is_empty() {
            return Vec::new();
        }
        vec![(*rng.pick(&fresh)).clone()]
    }

    pub fn resolve(&mut self, sent: &[Sent], outcome: &Outcome, now: Moment, next_at: Moment) {
        self.in_flight = false;
        self.next_at = next_at;
        match outcome {
            Outcome::Acked => {
                self.last_ack = Some(now);
                for s in sent {
                    self.pending.retain(|p| p.event != s.event);
                    if s.signed.is_some() {
                        self.acked_signed.push(s.clone());
                    }
                }
            }
            Outcome::Replayed(i) => {
                let e = sent[*i].event;
                self.pending.retain(|p| p.event != e);
            }
            Outcome::Refused | Outcome::Unknown => {}
        }
    }
}
