//! In-process cache tier (placeholder).
