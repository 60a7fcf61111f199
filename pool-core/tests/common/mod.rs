//! Shared test support: a fault-injecting fake [`Manager`] and a recording
//! [`Observer`].
//!
//! `Fake` is a cheap handle (an `Arc`): clone it before handing it to the
//! builder and keep the clone to script outcomes and read counters.
#![allow(dead_code)] // every test file uses a different part of this

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pool_core::{
    DestroyReason, Error, Event, EventKind, Manager, Observer, Pool, ResourceInfo, Status, TimeoutPhase,
};

/// What one call to `create` or `recycle` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Succeeds at once.
    Ok,
    /// Fails at once with this message.
    Fail(&'static str),
    /// Succeeds after this long.
    Slow(Duration),
    /// Never completes.
    Never,
    /// Fails at once, refused because the backend is full
    /// (`Manager::is_capacity_error` says so).
    Full,
    /// Waits until [`Fake::release_creates`] lets it go, then succeeds.
    Gated,
    /// Refused like [`Outcome::Full`], after this long.
    FullAfter(Duration),
    /// Panics.
    Panic,
}

/// Shorthand for `Outcome::Slow(Duration::from_millis(ms))`.
pub(crate) fn slow(ms: u64) -> Outcome {
    Outcome::Slow(Duration::from_millis(ms))
}

/// The fake backend's error: just a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FakeError(pub(crate) String);

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FakeError {}

/// A fake connection: an id (0, 1, 2, ... in creation order) and a flag
/// that `Manager::is_broken` reports.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: usize,
    broken: Arc<AtomicBool>,
    unsettled: bool,
}

impl Conn {
    /// Makes `is_broken` say yes when it comes back.
    pub(crate) fn break_it(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    /// Makes `needs_settling` say yes when it comes back (until settled).
    pub(crate) fn leave_work_behind(&mut self) {
        self.unsettled = true;
    }
}

type Then = Box<dyn FnMut(usize) -> Outcome + Send>;

/// Outcomes for successive calls: the queue first, then `then(call number)`.
struct Script {
    queue: VecDeque<Outcome>,
    then: Then,
    calls: usize,
}

impl Script {
    fn new() -> Self {
        Self { queue: VecDeque::new(), then: Box::new(|_| Outcome::Ok), calls: 0 }
    }

    fn next(&mut self) -> Outcome {
        let n = self.calls;
        self.calls += 1;
        self.queue.pop_front().unwrap_or_else(|| (self.then)(n))
    }
}

#[derive(Default)]
struct Counters {
    created: usize,
    destroyed: Vec<(usize, DestroyReason)>,
    /// `create` calls running now, and the most seen at once.
    in_flight: usize,
    most_in_flight: usize,
}

struct Inner {
    /// Lets [`Outcome::Gated`] creates finish.
    gate: tokio::sync::Semaphore,
    create: Mutex<Script>,
    recycle: Mutex<Script>,
    settle: Mutex<Script>,
    counters: Mutex<Counters>,
    next_id: AtomicUsize,
}

/// The fake manager. Every method is scriptable; see [`Outcome`].
#[derive(Clone)]
pub(crate) struct Fake {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The error of [`Outcome::Full`], PostgreSQL's words.
pub(crate) const FULL: &str = "sorry, too many clients already";

/// A create error the fake calls passing (`Manager::is_passing_error`),
/// PostgreSQL's words during a restart.
pub(crate) const STARTING_UP: &str = "the database system is starting up";

async fn play(outcome: Outcome, what: &str, gate: &tokio::sync::Semaphore) -> Result<(), FakeError> {
    match outcome {
        Outcome::Ok => Ok(()),
        Outcome::Fail(msg) => Err(FakeError(msg.to_owned())),
        Outcome::Full => Err(FakeError(FULL.to_owned())),
        Outcome::FullAfter(d) => {
            tokio::time::sleep(d).await;
            Err(FakeError(FULL.to_owned()))
        }
        Outcome::Gated => {
            gate.acquire().await.expect("the gate is never closed").forget();
            Ok(())
        }
        Outcome::Slow(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Outcome::Never => std::future::pending().await,
        Outcome::Panic => panic!("injected panic in {what}"),
    }
}

impl Fake {
    /// A manager whose creates and recycles all succeed at once.
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                gate: tokio::sync::Semaphore::new(0),
                create: Mutex::new(Script::new()),
                recycle: Mutex::new(Script::new()),
                settle: Mutex::new(Script::new()),
                counters: Mutex::new(Counters::default()),
                next_id: AtomicUsize::new(0),
            }),
        }
    }

    /// Queues outcomes for the next creates (after those already queued).
    pub(crate) fn script_create(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        lock(&self.inner.create).queue.extend(outcomes);
    }

    /// What creates do once the queue is empty, by call number (0-based).
    pub(crate) fn create_then(&self, f: impl FnMut(usize) -> Outcome + Send + 'static) {
        lock(&self.inner.create).then = Box::new(f);
    }

    /// Every create from now on (queue cleared) has this outcome.
    pub(crate) fn create_always(&self, outcome: Outcome) {
        let mut script = lock(&self.inner.create);
        script.queue.clear();
        script.then = Box::new(move |_| outcome.clone());
    }

    /// Queues outcomes for the next recycles.
    pub(crate) fn script_recycle(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        lock(&self.inner.recycle).queue.extend(outcomes);
    }

    /// What recycles do once the queue is empty, by call number (0-based).
    pub(crate) fn recycle_then(&self, f: impl FnMut(usize) -> Outcome + Send + 'static) {
        lock(&self.inner.recycle).then = Box::new(f);
    }

    /// Every recycle from now on (queue cleared) has this outcome.
    pub(crate) fn recycle_always(&self, outcome: Outcome) {
        let mut script = lock(&self.inner.recycle);
        script.queue.clear();
        script.then = Box::new(move |_| outcome.clone());
    }

    /// Every settle from now on has this outcome.
    pub(crate) fn settle_always(&self, outcome: Outcome) {
        let mut script = lock(&self.inner.settle);
        script.queue.clear();
        script.then = Box::new(move |_| outcome.clone());
    }

    /// Calls to `settle` so far (finished or not).
    pub(crate) fn settle_calls(&self) -> usize {
        lock(&self.inner.settle).calls
    }

    /// Lets `n` [`Outcome::Gated`] creates (running or to come) finish.
    pub(crate) fn release_creates(&self, n: usize) {
        self.inner.gate.add_permits(n);
    }

    /// `create` calls running now.
    pub(crate) fn creates_in_flight(&self) -> usize {
        lock(&self.inner.counters).in_flight
    }

    /// The most `create` calls that ran at once so far.
    pub(crate) fn most_creates_in_flight(&self) -> usize {
        lock(&self.inner.counters).most_in_flight
    }

    /// Calls to `create` so far (finished or not).
    pub(crate) fn create_calls(&self) -> usize {
        lock(&self.inner.create).calls
    }

    /// Calls to `recycle` so far (finished or not).
    pub(crate) fn recycle_calls(&self) -> usize {
        lock(&self.inner.recycle).calls
    }

    /// Resources successfully created.
    pub(crate) fn created(&self) -> usize {
        lock(&self.inner.counters).created
    }

    /// Resources destroyed for `reason`.
    pub(crate) fn destroyed(&self, reason: DestroyReason) -> usize {
        lock(&self.inner.counters).destroyed.iter().filter(|(_, r)| *r == reason).count()
    }

    /// Ids of destroyed resources with their reasons, in order.
    pub(crate) fn destroyed_ids(&self) -> Vec<(usize, DestroyReason)> {
        lock(&self.inner.counters).destroyed.clone()
    }

    /// All resources destroyed.
    pub(crate) fn destroyed_total(&self) -> usize {
        lock(&self.inner.counters).destroyed.len()
    }

    /// Created and not (yet) destroyed: those the pool holds, plus any detached.
    pub(crate) fn live(&self) -> usize {
        let c = lock(&self.inner.counters);
        c.created - c.destroyed.len()
    }

    /// Whether every other handle to this manager (the pool's) was dropped.
    pub(crate) fn only_handle_left(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }
}

impl Manager for Fake {
    type Resource = Conn;
    type Error = FakeError;

    // It stands in for a database connection, so the tests read the texts
    // a PostgreSQL pool's users read.
    const RESOURCE: &'static str = "connection";

    async fn create(&self) -> Result<Conn, FakeError> {
        let outcome = lock(&self.inner.create).next();
        let _in_flight = InFlight::enter(&self.inner.counters);
        play(outcome, "create", &self.inner.gate).await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::SeqCst);
        lock(&self.inner.counters).created += 1;
        Ok(Conn { id, broken: Arc::new(AtomicBool::new(false)), unsettled: false })
    }

    async fn recycle(&self, _conn: &mut Conn, _info: &ResourceInfo) -> Result<(), FakeError> {
        let outcome = lock(&self.inner.recycle).next();
        play(outcome, "recycle", &self.inner.gate).await
    }

    fn is_capacity_error(&self, error: &FakeError) -> bool {
        error.0 == FULL
    }

    fn is_passing_error(&self, error: &FakeError) -> bool {
        error.0 == STARTING_UP
    }

    fn is_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::SeqCst)
    }

    fn needs_settling(&self, conn: &mut Conn) -> bool {
        conn.unsettled
    }

    async fn settle(&self, conn: &mut Conn) -> Result<(), FakeError> {
        let outcome = lock(&self.inner.settle).next();
        play(outcome, "settle", &self.inner.gate).await?;
        conn.unsettled = false;
        Ok(())
    }

    fn destroy(&self, conn: Conn, reason: DestroyReason) {
        lock(&self.inner.counters).destroyed.push((conn.id, reason));
    }
}

/// Counts one running `create` (also one cancelled halfway) while alive.
struct InFlight<'a>(&'a Mutex<Counters>);

impl<'a> InFlight<'a> {
    fn enter(counters: &'a Mutex<Counters>) -> Self {
        let mut c = lock(counters);
        c.in_flight += 1;
        c.most_in_flight = c.most_in_flight.max(c.in_flight);
        Self(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.0).in_flight -= 1;
    }
}

/// An [`EventKind`] as owned data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    Started,
    Creating,
    Resized,
    Created,
    CreateFailed(String),
    Acquired(Duration),
    Released(Duration),
    TimedOut(TimeoutPhase),
    CapacityRefused(Duration),
    Rejected,
    Destroyed(DestroyReason),
    LeakSuspected { held: Duration, file: &'static str, line: u32 },
    Closed,
    Other(String),
}

/// An observer that keeps every event (with the status after it).
#[derive(Default)]
pub(crate) struct Recorder {
    events: Mutex<Vec<(Seen, Status)>>,
}

impl Recorder {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Every event so far, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        lock(&self.events).iter().map(|(seen, _)| seen.clone()).collect()
    }

    /// The status every event so far carried, in order.
    pub(crate) fn statuses(&self) -> Vec<Status> {
        lock(&self.events).iter().map(|(_, status)| *status).collect()
    }

    /// The last event, with the status it carried.
    pub(crate) fn last(&self) -> Option<(Seen, Status)> {
        lock(&self.events).last().cloned()
    }

    /// How many events so far match.
    pub(crate) fn count(&self, f: impl Fn(&Seen) -> bool) -> usize {
        lock(&self.events).iter().filter(|(seen, _)| f(seen)).count()
    }
}

impl Observer for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        let seen = match &event.kind {
            EventKind::Started => Seen::Started,
            EventKind::Creating => Seen::Creating,
            EventKind::Resized => Seen::Resized,
            EventKind::Created { .. } => Seen::Created,
            EventKind::CreateFailed { error, .. } => Seen::CreateFailed(error.to_string()),
            EventKind::Acquired { waited } => Seen::Acquired(*waited),
            EventKind::Released { held } => Seen::Released(*held),
            EventKind::TimedOut { phase } => Seen::TimedOut(*phase),
            EventKind::CapacityRefused { cooldown } => Seen::CapacityRefused(*cooldown),
            EventKind::Rejected => Seen::Rejected,
            EventKind::Destroyed { reason } => Seen::Destroyed(*reason),
            EventKind::LeakSuspected { held, location } => {
                Seen::LeakSuspected { held: *held, file: location.file(), line: location.line() }
            }
            EventKind::Closed => Seen::Closed,
            other => Seen::Other(format!("{other:?}")),
        };
        lock(&self.events).push((seen, event.status));
    }
}

/// A `tracing` subscriber that keeps every event as `LEVEL field=value ...`.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    /// Every line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let _ = std::fmt::Write::write_fmt(&mut self.0, format_args!(" {}={value:?}", field.name()));
            }
        }
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        lock(&self.0).push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A task that gets a resource and gives it straight back: joins with the
/// resource's id, or the error.
pub(crate) fn spawn_get(pool: &Pool<Fake>) -> tokio::task::JoinHandle<Result<usize, Error<FakeError>>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.get().await.map(|conn| conn.id) })
}

/// `(size, idle, in_use, creating, waiting)`, for compact assertions.
pub(crate) fn counts<M: Manager>(pool: &Pool<M>) -> (usize, usize, usize, usize, usize) {
    let s = pool.status();
    (s.size, s.idle, s.in_use, s.creating, s.waiting)
}

/// Checks the invariants that hold at every instant, whatever is going on
/// (`max_bound` is the largest `max_size` the pool ever had, for shrinks).
pub(crate) fn check_consistent(s: &Status, max_bound: usize) -> Result<(), String> {
    let rules = [
        (s.idle + s.in_use == s.size, "idle + in_use == size"),
        (s.size + s.creating <= max_bound, "size + creating <= the largest max_size"),
        (s.size + s.creating <= s.max_size || s.idle == 0, "nothing idle above max_size after a shrink"),
        (s.waiting == 0 || s.idle == 0, "nobody waits while something is idle"),
        // A slot may be free while creates are at `max_concurrent_creates`
        // (at least 1, so then `creating > 0`) or the pool cools down.
        (
            s.waiting == 0 || s.size + s.creating >= s.max_size || s.creating > 0 || s.cooling_down,
            "nobody waits while a slot is free and a create may start",
        ),
        (!s.closed || (s.idle == 0 && s.waiting == 0), "a closed pool keeps nothing idle or queued"),
    ];
    match rules.iter().find(|(holds, _)| !holds) {
        Some((_, rule)) => Err(format!("{rule}: {s:?}")),
        None => Ok(()),
    }
}

/// [`check_consistent`], panicking on a violation.
pub(crate) fn assert_consistent(s: &Status, max_bound: usize) {
    if let Err(violation) = check_consistent(s, max_bound) {
        panic!("{violation}");
    }
}

/// An observer that checks [`check_consistent`] after every event and keeps
/// the violations (panicking inside the pool would muddle the failure).
pub(crate) struct Invariants {
    max_bound: usize,
    violations: Mutex<Vec<String>>,
}

impl Invariants {
    pub(crate) fn new(max_bound: usize) -> Arc<Self> {
        Arc::new(Self { max_bound, violations: Mutex::new(Vec::new()) })
    }

    /// The first few violations seen.
    pub(crate) fn violations(&self) -> Vec<String> {
        lock(&self.violations).clone()
    }
}

impl Observer for Invariants {
    fn on_event(&self, event: &Event<'_>) {
        if let Err(violation) = check_consistent(&event.status, self.max_bound) {
            let mut violations = lock(&self.violations);
            if violations.len() < 3 {
                violations.push(format!("after {:?}: {violation}", event.kind));
            }
        }
    }
}

/// Polls a future once by hand, with a waker that does nothing.
pub(crate) fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Lets every ready task run (on a current-thread runtime) without moving
/// the paused clock.
pub(crate) async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}
