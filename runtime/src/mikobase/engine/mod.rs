//! The Mikobase engine on SQLite (issue 4).
