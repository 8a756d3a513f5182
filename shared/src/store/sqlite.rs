//! Embedded store (SQLite). Implemented in its own change.
