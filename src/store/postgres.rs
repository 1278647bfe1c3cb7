//! PostgreSQL store (placeholder).
