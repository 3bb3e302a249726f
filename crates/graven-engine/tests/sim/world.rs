//! The simulated world: a few nodes of one shared log on one [`MemStore`], their clients, a
//! simulated clock, and the schedule of faults, all drawn from one seed.
//!
//! **A step** is one event, taken in time order (ties broken by the seed): a node's lease round
//! ([`Lease::tick`]), a node's sequencer step ([`Stepper::step`]), a client sending a batch, a
//! fault (a node killed, stopped as with SIGSTOP, shut down cleanly, started again), or the end
//! of the faults. Nothing runs on its own: no thread, no OS clock. Everything a node does to
//! the store goes through its [`NodeStore`], where the seed also decides, request by request,
//! whether the request fails, loses its reply, is slow, or is where the node is stopped or
//! killed. A slow request or a stop in the middle of a request runs the rest of the world for a
//! while *inside* that request (the node's frames stay on the stack, exactly as a stopped
//! process's do), then lets the request go on with whatever the node believed before.
//! A node's sleeps (the object log's retry waits) do the same.
//!
//! Invariants are checked after every step ([`crate::check::Checker`]).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use graven_clock::{Clock, Moment, SimClock};
use graven_core::note::SignerKey;
use graven_engine::engine::{Engine, EngineConfig, NextStep, Receipt, Shared, Stepper, SubmitError};
use graven_engine::lease::{LEASE_KEY, Lease};
use graven_engine::reader::LogReader;
use graven_tlog::objlog::{CHECKPOINT_KEY, HEAD_KEY};
use graven_tlog::{CachedStore, Cond, MemStore, Object, ObjectStore, StoreError};

use crate::check::{Checker, HeadWrite};
use crate::client::{Client, Outcome, Sent};
use crate::rng::Rng;

/// How deep slow requests and stops may nest inside one another.
const MAX_DEPTH: usize = 3;

/// What one seed chose.
#[derive(Debug, Clone)]
pub struct Cfg {
    pub nodes: usize,
    pub clients: usize,
    pub ttl: Duration,
    pub poll: Duration,
    pub batch_wait: Duration,
    pub max_batch_events: usize,
    pub max_pending_events: usize,
    pub window_s: u64,
    /// Each node's and each client's wall-clock error, in microseconds (within ±20 s: the
    /// client-signature record assumes clocks within a minute of each other).
    pub node_skew: Vec<i64>,
    pub client_skew: Vec<i64>,
    /// Faults happen during `[0, chaos)`, then the world heals and runs `quiet` more.
    pub chaos: Duration,
    pub quiet: Duration,
    /// Mean time between node faults (kill, stop, clean shutdown).
    pub fault_every: Duration,
    /// Per mille of store requests that fail before landing, land but lose their reply, are
    /// slow, are where the node is stopped, are where it is killed.
    pub p_fail: u64,
    pub p_lost: u64,
    pub p_slow: u64,
    pub p_stop: u64,
    pub p_kill: u64,
    pub tile_cache: usize,
}

impl Cfg {
    pub fn draw(rng: &mut Rng) -> Cfg {
        let nodes = rng.range(2, 3) as usize;
        let clients = rng.range(1, 3) as usize;
        let ttl = Duration::from_millis(*rng.pick(&[2_000, 5_000, 5_000]));
        let skew = |rng: &mut Rng| rng.range(0, 40_000_000) as i64 - 20_000_000;
        Cfg {
            nodes,
            clients,
            ttl,
            poll: Duration::from_millis(*rng.pick(&[250, 250, 1_000])),
            batch_wait: Duration::from_millis(*rng.pick(&[0, 0, 5, 50])),
            max_batch_events: *rng.pick(&[65_536, 65_536, 3]),
            // Far above what the clients can have waiting (the default, 262,144, only makes each
            // node's queue allocate more at start), or small enough to push back.
            max_pending_events: *rng.pick(&[4_096, 4_096, 8]),
            window_s: *rng.pick(&[10, 30, 300]),
            node_skew: (0..nodes).map(|_| skew(rng)).collect(),
            client_skew: (0..clients).map(|_| skew(rng)).collect(),
            chaos: Duration::from_secs(rng.range(20, 40)),
            quiet: ttl * 6,
            fault_every: Duration::from_millis(rng.range(1_000, 8_000)),
            p_fail: *rng.pick(&[0, 5, 20]),
            p_lost: *rng.pick(&[0, 5, 20]),
            p_slow: *rng.pick(&[0, 5, 20]),
            p_stop: *rng.pick(&[0, 2, 10]),
            p_kill: *rng.pick(&[0, 1, 4]),
            tile_cache: *rng.pick(&[0, 16 << 10, 1 << 20]),
        }
    }
}

/// Who is running: the stack of actors whose frames are live, innermost last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Lease(usize),
    Seq(usize),
    /// A client's request being polled (receipts are built on the client's side).
    Client,
}

/// A running node: one incarnation of a process.
struct Live {
    inc: u64,
    engine: Engine,
    lease: Arc<Lease>,
    store: Arc<NodeStore>,
    lease_at: Option<Moment>,
    step_at: Option<Moment>,
    /// Stopped (SIGSTOP) until then: neither of its threads runs.
    stopped_until: Option<Moment>,
    lease_busy: bool,
    seq_busy: bool,
    /// Killed while one of its frames was on the stack: it is dropped when they return.
    doomed: bool,
    /// Shut down cleanly (SIGTERM): its queue is closed; it stops when drained.
    stopping: bool,
}

struct NodeCtl {
    live: Option<Live>,
    restart_at: Option<Moment>,
}

/// Everything the schedule decides and tracks, behind one lock taken only briefly.
struct Ctl {
    rng: Rng,
    nodes: Vec<NodeCtl>,
    clients: Vec<Client>,
    fault_at: Moment,
    faults_on: bool,
    actors: Vec<Actor>,
    depth: usize,
    next_inc: u64,
    trace: Trace,
}

/// The last lines of what happened, and a hash of every line (two runs of a seed must agree).
#[derive(Debug, Default)]
pub struct Trace {
    /// How many lines are kept.
    pub keep: usize,
    pub lines: VecDeque<String>,
    pub hash: u64,
    pub steps: u64,
}

impl Trace {
    fn push(&mut self, line: String) {
        // FNV-1a.
        for b in line.bytes().chain([b'\n']) {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        if self.lines.len() >= self.keep {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

/// An event of the schedule.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Lease(usize),
    Step(usize),
    Client(usize),
    Fault,
    Restart(usize),
    Heal,
}

/// A client's request waiting for its answer.
struct Request {
    client: usize,
    node: usize,
    inc: u64,
    sent: Vec<Sent>,
    replay: bool,
    fut: Pin<Box<dyn Future<Output = Result<Vec<Receipt>, SubmitError>> + Send>>,
}

/// Counts, for the long run's report.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub kills: u64,
    pub stops: u64,
    pub shutdowns: u64,
    pub failed_requests: u64,
    pub lost_replies: u64,
    pub slow_requests: u64,
}

pub struct World {
    pub cfg: Cfg,
    pub clock: SimClock,
    pub store: Arc<MemStore>,
    pub key: SignerKey,
    me: Weak<World>,
    ctl: Mutex<Ctl>,
    steppers: Vec<Mutex<Option<Stepper>>>,
    requests: Mutex<Vec<Request>>,
    pub check: Mutex<Checker>,
    pub stats: Mutex<Stats>,
    /// Who wrote each version of the head, in order: the node's lease id and how many versions
    /// the lease object had when the write landed (see [`World::landed`]).
    pub head_writes: Mutex<HeadWrites>,
    heal_at: Moment,
    pub end: Moment,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io(msg: &str) -> StoreError {
    StoreError::Io { op: "simulated", key: String::new(), msg: msg.into() }
}

/// Unix time at the simulation's origin: 2026-01-01T00:00:00Z.
pub const EPOCH_MICROS: i64 = 1_767_225_600_000_000;

impl World {
    /// The world of `seed`, keeping the last `keep` lines of its trace.
    pub fn new(seed: u64, keep: usize) -> Arc<World> {
        let mut rng = Rng::new(seed);
        let cfg = Cfg::draw(&mut rng);
        let clock = SimClock::new(EPOCH_MICROS);
        let store = Arc::new(MemStore::new());
        store.keep_versions(HEAD_KEY);
        store.keep_versions(CHECKPOINT_KEY);
        store.keep_versions(LEASE_KEY);
        let key = SignerKey::from_seed("sim.example/log", [7; 32]).unwrap();
        let clients = (0..cfg.clients).map(|c| Client::new(c, cfg.client_skew[c])).collect();
        let heal_at = Moment::ZERO + cfg.chaos;
        let end = heal_at + cfg.quiet;
        let fault_at = Moment::ZERO + Duration::from_millis(rng.range(0, cfg.fault_every.as_millis() as u64));
        let nodes = (0..cfg.nodes).map(|_| NodeCtl { live: None, restart_at: Some(Moment::ZERO) }).collect();
        let check = Checker::new(key.verifier(), cfg.nodes);
        Arc::new_cyclic(|me| World {
            steppers: (0..cfg.nodes).map(|_| Mutex::new(None)).collect(),
            cfg,
            clock,
            store,
            key,
            me: me.clone(),
            ctl: Mutex::new(Ctl {
                rng,
                nodes,
                clients,
                fault_at,
                faults_on: true,
                actors: Vec::new(),
                depth: 0,
                next_inc: 0,
                trace: Trace { keep, ..Trace::default() },
            }),
            requests: Mutex::new(Vec::new()),
            check: Mutex::new(check),
            stats: Mutex::new(Stats::default()),
            head_writes: Mutex::new(HeadWrites::default()),
            heal_at,
            end,
        })
    }

    fn ctl(&self) -> MutexGuard<'_, Ctl> {
        lock(&self.ctl)
    }

    fn me(&self) -> Arc<World> {
        self.me.upgrade().expect("the world is alive while it runs")
    }

    pub fn clock_now(&self) -> std::time::Duration {
        self.clock.now().since_origin()
    }

    pub fn trace(&self) -> (Vec<String>, u64, u64) {
        let c = self.ctl();
        (c.trace.lines.iter().cloned().collect(), c.trace.hash, c.trace.steps)
    }

    fn note(&self, c: &mut Ctl, what: impl std::fmt::Display) {
        let t = self.clock.now().since_origin();
        let depth = c.depth;
        c.trace.push(format!("{:>9.3}s {}{what}", t.as_secs_f64(), "  ".repeat(depth)));
    }

    /// Runs the whole schedule, checking the invariants after every step, then the final ones.
    pub fn run(&self) {
        self.run_until(self.end);
        let clients: Vec<(usize, Option<Moment>)> =
            self.ctl().clients.iter().map(|c| (c.id, c.last_ack)).collect();
        let w = self.me();
        let settle = self.end - self.cfg.ttl * 2;
        lock(&self.check).finish(&w.store, settle, &clients).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs every event due by `until`, in time order, then moves the clock to `until`.
    fn run_until(&self, until: Moment) {
        loop {
            let Some((t, ev)) = self.next_event(until) else {
                self.clock.advance_to(until);
                return;
            };
            self.clock.advance_to(t);
            self.exec(ev);
            self.poll_requests();
            self.check_now();
        }
    }

    fn next_event(&self, until: Moment) -> Option<(Moment, Ev)> {
        let mut c = self.ctl();
        let mut due: Vec<(Moment, Ev)> = Vec::new();
        for (i, n) in c.nodes.iter().enumerate() {
            match &n.live {
                Some(l) if !l.doomed => {
                    let at = |t: Moment| l.stopped_until.map_or(t, |s| s.max(t));
                    if let (Some(t), false) = (l.lease_at, l.lease_busy) {
                        due.push((at(t), Ev::Lease(i)));
                    }
                    if let (Some(t), false, false) = (l.step_at, l.seq_busy, l.lease_busy) {
                        due.push((at(t), Ev::Step(i)));
                    }
                }
                Some(_) => {}
                None => {
                    if let Some(t) = n.restart_at {
                        due.push((t, Ev::Restart(i)));
                    }
                }
            }
        }
        for (i, cl) in c.clients.iter().enumerate() {
            due.push((cl.next_at, Ev::Client(i)));
        }
        if c.faults_on {
            due.push((c.fault_at.min(self.heal_at), Ev::Fault));
            due.push((self.heal_at, Ev::Heal));
        }
        let first = due.iter().map(|d| d.0).min()?;
        if first > until {
            return None;
        }
        let now = self.clock.now();
        let ties: Vec<(Moment, Ev)> = due.into_iter().filter(|d| d.0 == first).collect();
        let (t, ev) = *c.rng.pick(&ties);
        c.trace.steps += 1;
        Some((t.max(now), ev))
    }

    fn exec(&self, ev: Ev) {
        match ev {
            Ev::Lease(i) => self.exec_lease(i),
            Ev::Step(i) => self.exec_step(i),
            Ev::Client(i) => self.exec_client(i),
            Ev::Fault => self.exec_fault(),
            Ev::Restart(i) => self.start_node(i),
            Ev::Heal => {
                let mut c = self.ctl();
                c.faults_on = false;
                let now = self.clock.now();
                for n in &mut c.nodes {
                    if n.live.is_none() {
                        n.restart_at = Some(now);
                    }
                    if let Some(l) = &mut n.live {
                        l.stopped_until = None;
                    }
                }
                self.note(&mut c, "heal: no more faults; every node runs");
            }
        }
    }

    fn exec_lease(&self, i: usize) {
        let (lease, inc) = {
            let mut c = self.ctl();
            let Some(l) = c.nodes[i].live.as_mut() else { return };
            l.lease_busy = true;
            let got = (l.lease.clone(), l.inc);
            c.actors.push(Actor::Lease(i));
            got
        };
        let started = self.clock.now();
        let mine = lease.tick();
        let mut c = self.ctl();
        c.actors.pop();
        let now = self.clock.now();
        let period = self.cfg.ttl / 5;
        let jitter = Duration::from_millis(c.rng.below(period.as_millis() as u64 / 10 + 1));
        self.note(
            &mut c,
            format_args!("n{i}.{inc} lease round: {}", if mine { "holds" } else { "does not hold" }),
        );
        let dropped = match c.nodes[i].live.as_mut() {
            Some(l) if l.inc == inc => {
                l.lease_busy = false;
                l.lease_at = Some((started + period).max(now) + jitter);
                l.doomed && !l.seq_busy
            }
            _ => false,
        };
        if dropped {
            self.drop_node(&mut c, i);
        }
    }

    fn exec_step(&self, i: usize) {
        let inc = {
            let mut c = self.ctl();
            let Some(l) = c.nodes[i].live.as_mut() else { return };
            l.seq_busy = true;
            let inc = l.inc;
            c.actors.push(Actor::Seq(i));
            inc
        };
        let next = lock(&self.steppers[i]).as_mut().map(Stepper::step);
        let mut c = self.ctl();
        c.actors.pop();
        let now = self.clock.now();
        self.note(&mut c, format_args!("n{i}.{inc} step: {next:?}"));
        let (dropped, stopped) = match c.nodes[i].live.as_mut() {
            Some(l) if l.inc == inc => {
                l.seq_busy = false;
                l.step_at = match next {
                    Some(NextStep::Now) => Some(now),
                    Some(NextStep::Wait(Some(t))) => Some(t.max(now)),
                    _ => None,
                };
                (l.doomed && !l.lease_busy, matches!(next, Some(NextStep::Stop)))
            }
            _ => (false, false),
        };
        if dropped || stopped {
            if stopped {
                self.note(&mut c, format_args!("n{i}.{inc} shut down cleanly"));
            }
            self.drop_node(&mut c, i);
        }
    }

    fn start_node(&self, i: usize) {
        let mut c = self.ctl();
        let inc = c.next_inc;
        c.next_inc += 1;
        let clock: Arc<dyn Clock> =
            Arc::new(NodeClock { world: self.me.clone(), skew: self.cfg.node_skew[i] });
        let node_store = Arc::new(NodeStore {
            world: self.me.clone(),
            node: i,
            inc,
            inner: self.store.clone(),
            dead: Default::default(),
        });
        let store: Arc<dyn ObjectStore> = if self.cfg.tile_cache == 0 {
            node_store.clone()
        } else {
            Arc::new(CachedStore::new(node_store.clone(), self.cfg.tile_cache))
        };
        let lease = Lease::with_node_id(
            store.clone(),
            Some(format!("http://node{i}.sim")),
            self.cfg.ttl,
            clock.clone(),
            format!("n{i}.{inc}"),
        );
        let config = EngineConfig {
            max_batch_events: self.cfg.max_batch_events,
            max_batch_wait: self.cfg.batch_wait,
            max_pending_events: self.cfg.max_pending_events,
            client_signature_window: Duration::from_secs(self.cfg.window_s),
            clock,
            ..EngineConfig::default()
        };
        let shared = Shared {
            store: store.clone(),
            key: self.key.clone(),
            lease: lease.clone(),
            poll: self.cfg.poll,
            pipeline: false,
        };
        let (engine, stepper) = Engine::start_shared_stepped(shared, LogReader::objects(store), config);
        *lock(&self.steppers[i]) = Some(stepper);
        let now = self.clock.now();
        c.nodes[i].restart_at = None;
        c.nodes[i].live = Some(Live {
            inc,
            engine,
            lease,
            store: node_store,
            lease_at: Some(now),
            step_at: Some(now),
            stopped_until: None,
            lease_busy: false,
            seq_busy: false,
            doomed: false,
            stopping: false,
        });
        self.note(&mut c, format_args!("n{i}.{inc} starts"));
    }

    /// Removes node `i` (none of its frames may be on the stack) and plans its restart.
    fn drop_node(&self, c: &mut Ctl, i: usize) {
        if let Some(l) = c.nodes[i].live.take() {
            l.store.dead.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let stepper = lock(&self.steppers[i]).take();
        drop(stepper);
        let down = Duration::from_millis(c.rng.range(100, 3 * self.cfg.ttl.as_millis() as u64));
        c.nodes[i].restart_at = Some(self.clock.now() + down);
    }

    /// Kills node `i`'s incarnation `inc` now: its store requests fail from here on, its
    /// clients' requests lose their connection, and it is dropped (at once, or when its frames
    /// on the stack return).
    fn kill(&self, i: usize, inc: u64, why: &str) {
        let mut c = self.ctl();
        let Some(l) = c.nodes[i].live.as_mut().filter(|l| l.inc == inc && !l.doomed) else { return };
        l.store.dead.store(true, std::sync::atomic::Ordering::SeqCst);
        l.doomed = true;
        let busy = l.lease_busy || l.seq_busy;
        self.note(&mut c, format_args!("n{i}.{inc} killed {why}"));
        if !busy {
            self.drop_node(&mut c, i);
        }
        drop(c);
        lock(&self.stats).kills += 1;
        // Connections to the dead process break: its answers never arrive.
        let mut reqs = lock(&self.requests);
        let mut cut = Vec::new();
        reqs.retain_mut(|r| {
            let keep = !(r.node == i && r.inc == inc);
            if !keep {
                cut.push((r.client, std::mem::take(&mut r.sent)));
            }
            keep
        });
        drop(reqs);
        let mut c = self.ctl();
        let now = self.clock.now();
        for (client, sent) in cut {
            let delay = Duration::from_millis(c.rng.range(10, 200));
            c.clients[client].resolve(&sent, &Outcome::Unknown, now, now + delay);
        }
    }

    fn exec_fault(&self) {
        let mut c = self.ctl();
        let now = self.clock.now();
        let every = self.cfg.fault_every.as_millis() as u64;
        c.fault_at = now + Duration::from_millis(c.rng.range(every / 2, every * 3 / 2));
        let alive: Vec<usize> = (0..c.nodes.len())
            .filter(|&i| c.nodes[i].live.as_ref().is_some_and(|l| !l.doomed && !l.lease_busy && !l.seq_busy))
            .collect();
        if alive.is_empty() {
            return;
        }
        let i = *c.rng.pick(&alive);
        let kind = c.rng.below(10);
        let inc = c.nodes[i].live.as_ref().map_or(0, |l| l.inc);
        match kind {
            0..=3 => {
                drop(c);
                self.kill(i, inc, "(SIGKILL between steps)");
            }
            4..=8 => {
                let d = Duration::from_millis(c.rng.range(100, 3 * self.cfg.ttl.as_millis() as u64));
                if let Some(l) = c.nodes[i].live.as_mut() {
                    l.stopped_until = Some(now + d);
                }
                self.note(&mut c, format_args!("n{i}.{inc} stopped for {d:?} (SIGSTOP)"));
                drop(c);
                lock(&self.stats).stops += 1;
            }
            _ => {
                if let Some(l) = c.nodes[i].live.as_mut().filter(|l| !l.stopping) {
                    l.stopping = true;
                    l.engine.shutdown();
                    l.step_at = Some(now);
                }
                self.note(&mut c, format_args!("n{i}.{inc} shutting down (SIGTERM)"));
                drop(c);
                lock(&self.stats).shutdowns += 1;
            }
        }
    }

    fn exec_client(&self, ci: usize) {
        let mut guard = self.ctl();
        let now = self.clock.now();
        let c = &mut *guard;
        let think = Duration::from_millis(c.rng.range(20, 400));
        c.clients[ci].next_at = now + think;
        if c.clients[ci].in_flight {
            return;
        }
        // A stopped (SIGSTOP) node answers nothing: a client trying it times out and tries
        // another, which is what picking among the running ones stands for.
        let alive: Vec<usize> = (0..c.nodes.len())
            .filter(|&i| {
                c.nodes[i]
                    .live
                    .as_ref()
                    .is_some_and(|l| !l.doomed && !l.stopping && l.stopped_until.is_none_or(|t| t <= now))
            })
            .collect();
        if alive.is_empty() {
            return;
        }
        let i = *c.rng.pick(&alive);
        let Some(l) = c.nodes[i].live.as_mut() else { return };
        let node_now_s = (EPOCH_MICROS + self.cfg.node_skew[i] + now.since_origin().as_micros() as i64)
            .div_euclid(1_000_000);
        let window = self.cfg.window_s as i64;
        let replay = c.faults_on && c.rng.chance(100);
        let batch = if replay {
            c.clients[ci].replay(&mut c.rng, node_now_s, window)
        } else {
            c.clients[ci].next_batch(
                &mut c.rng,
                self.clock.unix_micros(),
                node_now_s,
                window,
                self.cfg.max_batch_events,
            )
        };
        if batch.is_empty() {
            return;
        }
        let entries = batch.iter().map(Sent::entry).collect();
        let engine = l.engine.clone();
        let fut = Box::pin(async move { engine.submit(entries).await });
        l.step_at = Some(l.step_at.map_or(now, |t| t.min(now)));
        let inc = l.inc;
        c.clients[ci].in_flight = true;
        let what: Vec<String> = batch.iter().map(Sent::label).collect();
        let line =
            format!("c{ci} -> n{i}.{inc}{}: {}", if replay { " (replay)" } else { "" }, what.join(" "));
        self.note(c, line);
        drop(guard);
        lock(&self.requests).push(Request { client: ci, node: i, inc, sent: batch, replay, fut });
    }

    /// Polls every request; answers go to their clients and the checker.
    fn poll_requests(&self) {
        let mut reqs = lock(&self.requests);
        let stopped: Vec<(usize, u64)> = {
            let mut c = self.ctl();
            c.actors.push(Actor::Client);
            let now = self.clock.now();
            c.nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    n.live.as_ref().filter(|l| l.stopped_until.is_some_and(|t| t > now)).map(|l| (i, l.inc))
                })
                .collect()
        };
        let mut i = 0;
        while i < reqs.len() {
            // A stopped process does not answer (nor build receipts) until it runs again.
            if stopped.contains(&(reqs[i].node, reqs[i].inc)) {
                i += 1;
                continue;
            }
            let mut cx = Context::from_waker(Waker::noop());
            match reqs[i].fut.as_mut().poll(&mut cx) {
                Poll::Pending => i += 1,
                Poll::Ready(result) => {
                    let r = reqs.remove(i);
                    self.answer(r, result);
                }
            }
        }
        self.ctl().actors.pop();
    }

    fn answer(&self, r: Request, result: Result<Vec<Receipt>, SubmitError>) {
        let now = self.clock.now();
        let outcome = match &result {
            Ok(receipts) => {
                let mut check = lock(&self.check);
                if r.replay {
                    panic!("a replayed client signature was acknowledged: {:?}", r.sent[0].label());
                }
                if receipts.len() != r.sent.len() {
                    panic!("{} receipts for {} entries", receipts.len(), r.sent.len());
                }
                for (s, rc) in r.sent.iter().zip(receipts) {
                    check.ack(&self.store, r.client, s, rc).unwrap_or_else(|e| panic!("{e}"));
                }
                Outcome::Acked
            }
            Err(SubmitError::Replayed { entry }) => {
                let s = &r.sent[*entry];
                lock(&self.check).replayed(s).unwrap_or_else(|e| panic!("{e}"));
                Outcome::Replayed(*entry)
            }
            Err(
                SubmitError::NotWriter { .. }
                | SubmitError::Overloaded { .. }
                | SubmitError::TooLarge { .. }
                | SubmitError::SignatureExpired { .. }
                | SubmitError::Unavailable(_),
            ) => {
                let mut check = lock(&self.check);
                for s in &r.sent {
                    check.refused(r.client, s);
                }
                Outcome::Refused
            }
            Err(_) => Outcome::Unknown,
        };
        let mut c = self.ctl();
        let line = match &result {
            Ok(rc) => {
                format!("c{} <- n{}.{}: {} acked from {}", r.client, r.node, r.inc, rc.len(), rc[0].index)
            }
            Err(e) => format!("c{} <- n{}.{}: {e}", r.client, r.node, r.inc),
        };
        self.note(&mut c, line);
        let delay = Duration::from_millis(c.rng.range(10, 300));
        if r.replay {
            c.clients[r.client].in_flight = false;
            return;
        }
        c.clients[r.client].resolve(&r.sent, &outcome, now, now + delay);
    }

    /// The invariants that hold after every step.
    fn check_now(&self) {
        let nodes: Vec<(usize, u64, Engine, Arc<Lease>)> = {
            let c = self.ctl();
            c.nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    n.live
                        .as_ref()
                        .filter(|l| !l.doomed)
                        .map(|l| (i, l.inc, l.engine.clone(), l.lease.clone()))
                })
                .collect()
        };
        let now = self.clock.now();
        let writes = lock(&self.head_writes);
        let mut check = lock(&self.check);
        check.after_step(&self.store, &nodes, now).unwrap_or_else(|e| panic!("{e}"));
        check.terms(&self.store, &writes.heads).unwrap_or_else(|e| panic!("{e}"));
    }

    /// After a put of node `i` (incarnation `inc`) to `key` returned, whatever it returned:
    /// if it was the head and a version landed, records who wrote it and when, in lease
    /// versions. Nothing else runs between the put and this (one request at a time).
    fn landed(&self, i: usize, inc: u64, key: &str) {
        if key != HEAD_KEY {
            return;
        }
        let mut w = lock(&self.head_writes);
        let new = self.store.versions(HEAD_KEY, w.heads.len()).len();
        w.lease_versions += self.store.versions(LEASE_KEY, w.lease_versions).len();
        let lease_versions = w.lease_versions;
        for _ in 0..new {
            w.heads.push(HeadWrite { writer: format!("n{i}.{inc}"), lease_versions });
        }
    }

    /// What the seed makes of one store request by node `i`.
    fn decide(&self, i: usize, inc: u64, put: bool, key: &str) -> Decision {
        let mut c = self.ctl();
        if !c.faults_on {
            return Decision::Go;
        }
        let (p_fail, p_lost, p_slow, p_stop, p_kill) =
            (self.cfg.p_fail, self.cfg.p_lost, self.cfg.p_slow, self.cfg.p_stop, self.cfg.p_kill);
        let r = c.rng.below(1000);
        let own = matches!(c.actors.last(), Some(Actor::Lease(n) | Actor::Seq(n)) if *n == i);
        // The sequencer writes the lease (giving it up) holding the lease's round lock; the
        // node's lease thread must not run inside that request, or it would wait on itself.
        let holds_round = matches!(c.actors.last(), Some(Actor::Seq(_))) && key == LEASE_KEY;
        let deep = c.depth >= MAX_DEPTH;
        let ttl = self.cfg.ttl.as_millis() as u64;
        let mut at = 0;
        let mut hit = |p: u64| {
            at += p;
            r < at
        };
        let d = if hit(p_fail) {
            Decision::Fail
        } else if hit(p_lost) {
            Decision::LoseReply
        } else if hit(p_slow) && own && !deep && !holds_round {
            let d = Duration::from_millis(c.rng.range(10, 2 * ttl));
            Decision::Slow { d, after: c.rng.chance(500) }
        } else if hit(p_stop) && own && !deep && !holds_round {
            let d = Duration::from_millis(c.rng.range(ttl / 4, 3 * ttl));
            Decision::Stop { d, after: c.rng.chance(500) }
        } else if hit(p_kill) && own {
            Decision::Kill { after: put && c.rng.chance(500) }
        } else {
            Decision::Go
        };
        if !matches!(d, Decision::Go) {
            self.note(&mut c, format_args!("n{i}.{inc} request: {d:?}"));
        }
        d
    }

    /// Runs the rest of the world for `d` while the current frame (a request or a sleep of
    /// node `i`) waits. `stop`: the whole node is stopped meanwhile, not just this thread.
    fn block(&self, i: usize, inc: u64, d: Duration, stop: bool) {
        let until = self.clock.now() + d;
        {
            let mut c = self.ctl();
            if c.depth >= MAX_DEPTH {
                drop(c);
                self.clock.advance_to(until);
                return;
            }
            c.depth += 1;
            if stop && let Some(l) = c.nodes[i].live.as_mut().filter(|l| l.inc == inc) {
                l.stopped_until = Some(until);
            }
        }
        self.run_until(until);
        let mut c = self.ctl();
        c.depth -= 1;
        if stop && let Some(l) = c.nodes[i].live.as_mut().filter(|l| l.inc == inc) {
            l.stopped_until = None;
        }
        self.note(&mut c, format_args!("n{i}.{inc} resumes"));
    }

    /// A sleep of whatever node is running (the object log's retry waits).
    fn sleep_current(&self, d: Duration) {
        let who = {
            let c = self.ctl();
            match c.actors.last() {
                Some(Actor::Lease(i) | Actor::Seq(i)) => c.nodes[*i].live.as_ref().map(|l| (*i, l.inc)),
                _ => None,
            }
        };
        match who {
            Some((i, inc)) => self.block(i, inc, d, false),
            None => self.clock.advance(d),
        }
    }
}

/// Who wrote each version of the head.
#[derive(Debug, Default)]
pub struct HeadWrites {
    pub heads: Vec<HeadWrite>,
    /// How many versions of the lease object there were at the last head write.
    lease_versions: usize,
}

#[derive(Debug, Clone, Copy)]
enum Decision {
    Go,
    Fail,
    LoseReply,
    Slow { d: Duration, after: bool },
    Stop { d: Duration, after: bool },
    Kill { after: bool },
}

/// A node's clock: the world's timeline, its own wall-clock error, and sleeps that let the
/// rest of the world run.
#[derive(Debug)]
struct NodeClock {
    world: Weak<World>,
    skew: i64,
}

impl Clock for NodeClock {
    fn now(&self) -> Moment {
        self.world.upgrade().map_or(Moment::ZERO, |w| w.clock.now())
    }

    fn unix_micros(&self) -> i64 {
        self.world.upgrade().map_or(0, |w| w.clock.unix_micros().saturating_add(self.skew))
    }

    fn sleep(&self, d: Duration) {
        if let Some(w) = self.world.upgrade() {
            w.sleep_current(d);
        }
    }
}

/// One node's way to the shared [`MemStore`]: every request passes the seed's decision first.
pub struct NodeStore {
    world: Weak<World>,
    node: usize,
    inc: u64,
    inner: Arc<MemStore>,
    dead: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeStore(n{}.{})", self.node, self.inc)
    }
}

impl NodeStore {
    fn is_dead(&self) -> bool {
        self.dead.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn request<T>(
        &self,
        put: bool,
        key: &str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(w) = self.world.upgrade() else { return f() };
        if self.is_dead() {
            return Err(io("the process is dead"));
        }
        let stats = |f: &dyn Fn(&mut Stats)| f(&mut lock(&w.stats));
        let decision = w.decide(self.node, self.inc, put, key);
        match decision {
            Decision::Go => f(),
            // A put fails through the MemStore's own failure modes (not written; written but
            // its reply lost, or refused if its condition does not hold); a read or a listing
            // fails here (a lost reply to a read is a failed read).
            Decision::Fail | Decision::LoseReply if put => {
                let land = matches!(decision, Decision::LoseReply);
                stats(&|s| if land { s.lost_replies += 1 } else { s.failed_requests += 1 });
                self.inner.fail_after(0, land);
                let r = f();
                self.inner.heal();
                r
            }
            Decision::Fail | Decision::LoseReply => {
                stats(&|s| s.failed_requests += 1);
                Err(io("injected failure"))
            }
            Decision::Slow { d, after } | Decision::Stop { d, after } => {
                let stop = matches!(decision, Decision::Stop { .. });
                if stop {
                    stats(&|s| s.stops += 1);
                } else {
                    stats(&|s| s.slow_requests += 1);
                }
                // The request lands before the wait (its reply is what waits) or after it.
                let (landed, later) = if after { (Some(f()), None) } else { (None, Some(f)) };
                w.block(self.node, self.inc, d, stop);
                if self.is_dead() {
                    return Err(io("the process was killed while it waited"));
                }
                match (landed, later) {
                    (Some(r), _) => r,
                    (None, Some(f)) => f(),
                    (None, None) => unreachable!(),
                }
            }
            Decision::Kill { after } => {
                if after {
                    let _ = f();
                }
                let why =
                    if after { "(SIGKILL after a request landed)" } else { "(SIGKILL before a request)" };
                w.kill(self.node, self.inc, why);
                Err(io("the process was killed"))
            }
        }
    }
}

impl ObjectStore for NodeStore {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        self.request(false, key, || self.inner.get(key, limit))
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        self.request(true, key, || {
            let r = self.inner.put(key, data, cond, retain);
            if let Some(w) = self.world.upgrade() {
                w.landed(self.node, self.inc, key);
            }
            r
        })
    }

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        self.request(false, prefix, || self.inner.first_key_after(prefix, after))
    }

    fn location(&self) -> String {
        format!("sim node {}", self.node)
    }
}
