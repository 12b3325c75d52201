//! Kubernetes API types of LLM MCP Hub.
