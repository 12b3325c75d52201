//! Fake model servers.
