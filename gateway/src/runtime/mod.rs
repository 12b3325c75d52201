//! The process runtime: CLI subprocesses, their pools, and what they teach about health.

pub mod health;
pub mod output;
pub mod parked;
pub mod pool;
pub mod process;
pub mod tool_server;
pub mod turn;
pub mod version;

pub use health::{Health, HealthState};
pub use pool::{Pool, PoolStatus};
pub use process::{CliProcess, Launcher};
