//! LLM MCP Hub: the vendors' own CLIs (`claude`, `gemini`) served as an OpenAI-compatible API.
//!
//! Layers, each depending only on those below it:
//! - `api`: HTTP front end (OpenAI REST, health, metrics);
//! - `mcp`: MCP front end (tools, resources, prompts) over the same `service`;
//! - `service`: what every front end shares (model resolution, chat);
//! - `backend`: where requests are answered (in-process pools here);
//! - `runtime`: CLI subprocesses and their pools;
//! - `provider`: pure adapters that describe each CLI.

pub mod api;
pub mod app;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod config;
#[cfg(test)]
mod decoding_properties;
pub mod discovery;
pub mod errors;
pub mod mcp;
pub mod metrics;
pub mod provider;
pub mod runtime;
pub mod server;
pub mod service;
pub mod session;
pub mod telemetry;
pub mod tls;
pub mod wire;
pub mod worker_api;
