//! Services shared by every front end (REST, MCP): model resolution and chat.

pub mod chat;

pub use chat::{ChatService, ResolvedModel, ServiceError};
