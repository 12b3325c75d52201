//! Services shared by every front end (REST, MCP): model resolution, chat turns, sessions.

pub mod chat;

pub use chat::{
    ChatService, ResolvedModel, ServiceError, SessionSettings, SessionView, Turn, TurnRequest,
};
