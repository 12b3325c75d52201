//! Harness for cross-component tests.
