//! Shared Mikobase: the generated surface, its support types and the engine.
pub mod engine;
