//! Checking an idle resource with [`Manager::recycle`] under a deadline:
//! the one path that `get` (before handing a resource out again) and the
//! keepalive check (on a resource idle for `keepalive_interval`) share.
//!
//! The check runs on a resource held in a [`Checking`] guard, so a check
//! cut short destroys it. The deadline is the earlier of the caller's own
//! (a `get`'s `acquire_timeout`; for keepalive, which no caller waits for,
//! `recycle_timeout` or else `acquire_timeout`, so that a hung check cannot
//! hold a slot for ever) and the longest one check may take
//! (`recycle_timeout`). It is read only if the check does not finish on its
//! first poll (`deadline.rs`), so a cheap check costs `get` no clock read.
//!
//! The outcome is recorded here, once: a failure becomes the pool's last
//! backend error and is logged, a timeout is logged. What the outcome then
//! means for the resource (hand it out, keep it, replace it, destroy it)
//! is the caller's.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use crate::cancel_guards::Checking;
use crate::deadline::{Ran, earliest, run_until};
use crate::manager::Manager;
use crate::shared::Shared;

/// What a check is for; decides how loudly its failures are logged.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CheckFor {
    /// `get` is about to hand the resource out again.
    Reuse,
    /// The upkeep task validates a resource that has idled for
    /// `keepalive_interval`.
    Keepalive,
    /// A returned resource is settled before it goes back idle.
    Settle,
}

/// How a check ended; see [`Shared::record_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recycled {
    /// The resource may be used again.
    Passed,
    /// `recycle` returned an error (now the pool's last error).
    Failed,
    /// The deadline passed first.
    TimedOut,
    /// The check had to wait, and no Tokio runtime runs to time it.
    NoRuntime,
}

impl<M: Manager> Shared<M> {
    /// Runs `recycle` on the resource `held` holds, until the earlier of
    /// `caller_deadline()` (asked only if the check does not finish at once)
    /// and `recycle_timeout`. Hand what it returns to
    /// [`Shared::record_check`].
    ///
    /// Not an `async fn`, and the recording not part of the future: the
    /// future sits inline in the future of every `get`, and any state of
    /// its own around the check's would be carried by each of them.
    pub(crate) fn recycle<'a>(
        &'a self,
        held: &'a mut Checking<'_, M>,
        caller_deadline: impl FnOnce() -> Option<Instant> + 'a,
    ) -> impl Future<Output = Ran<Result<(), M::Error>>> + 'a {
        let entry = held.entry_mut();
        run_until(self.manager.recycle(&mut entry.resource, &entry.info), move || {
            let per_check = self.config.recycle_timeout.and_then(|t| Instant::now().checked_add(t));
            earliest(caller_deadline(), per_check)
        })
    }

    /// The deadline of a keepalive check, which no caller waits for: its
    /// own bound, `recycle_timeout` or else `acquire_timeout`, so a hung
    /// check cannot hold its slot for ever.
    pub(crate) fn keepalive_deadline(&self) -> Option<Instant> {
        Instant::now().checked_add(self.config.background_recycle_timeout())
    }

    /// Records how a check [`Shared::recycle`] ran ended: logs it, and
    /// keeps a failure as the pool's last error.
    pub(crate) fn record_check(&self, ran: Ran<Result<(), M::Error>>, purpose: CheckFor) -> Recycled {
        let resource = M::RESOURCE;
        let pool = &self.config.name;
        match ran {
            Ran::Done(Ok(())) => Recycled::Passed,
            Ran::Done(Err(error)) => {
                let error = Arc::new(error);
                let chain = crate::ErrorChain(&*error);
                match purpose {
                    CheckFor::Reuse => {
                        tracing::debug!(%pool, error = %chain, "an idle {resource} failed its check before reuse");
                    }
                    CheckFor::Keepalive => {
                        tracing::info!(%pool, error = %chain, "an idle {resource} failed its keepalive check");
                    }
                    CheckFor::Settle => {
                        tracing::info!(%pool, error = %chain, "a returned {resource} could not be settled");
                    }
                }
                self.set_last_error(Some(crate::shared::LastError::failed(error)));
                Recycled::Failed
            }
            Ran::TimedOut => {
                match purpose {
                    CheckFor::Reuse => {
                        tracing::debug!(%pool, "an idle {resource}'s check before reuse timed out");
                    }
                    CheckFor::Keepalive => {
                        tracing::info!(%pool, "an idle {resource}'s keepalive check timed out");
                    }
                    CheckFor::Settle => {
                        tracing::info!(%pool, "settling a returned {resource} timed out");
                    }
                }
                Recycled::TimedOut
            }
            Ran::NoRuntime => Recycled::NoRuntime,
        }
    }
}

impl<M: Manager> Shared<M> {
    /// Settles a resource its borrower returned with work left behind
    /// ([`Manager::settle`]), bounded like a keepalive check, then puts it
    /// back, or destroys it if settling failed or took too long. Runs as a
    /// task of its own; the resource is held in a [`Checking`] guard all
    /// along, so a runtime shutting down mid-way destroys it and frees its
    /// slot rather than losing it.
    pub(crate) async fn settle_returned(self: Arc<Self>, entry: crate::engine::Entry<M::Resource>) {
        let mut held = Checking::new(&self, entry);
        let deadline = self.keepalive_deadline();
        let ran = {
            let entry = held.entry_mut();
            run_until(self.manager.settle(&mut entry.resource), || deadline).await
        };
        if !matches!(self.record_check(ran, CheckFor::Settle), Recycled::Passed) {
            // `held` destroys it.
            return;
        }
        let mut entry = held.passed();
        let now = Instant::now();
        entry.info.returned_at = now;
        entry.info.alive_at = now;
        let returned = self.core.put_back(entry, None);
        self.settle(returned);
    }
}
