#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acquire;
mod background;
mod backoff;
mod builder;
mod cancel_guards;
mod config;
mod cooldown;
mod create;
mod deadline;
mod engine;
mod error;
mod expiry;
mod guard;
mod info;
mod jitter;
mod leak;
mod maintenance;
mod manager;
mod observer;
mod pool;
mod recycle;
mod shared;
mod status;
mod sync;
mod upkeep;

pub use builder::PoolBuilder;
pub use config::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONCURRENT_CREATES, DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_SIZE, Reuse,
};
pub use error::{BuildError, CloseTimedOut, Error, ErrorChain, TimeoutPhase};
pub use guard::Pooled;
pub use info::ResourceInfo;
pub use manager::{DestroyReason, Manager};
pub use observer::{Event, EventKind, Observer};
pub use pool::Pool;
pub use status::Status;
