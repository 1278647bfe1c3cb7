//! Redis cache tier (placeholder).
