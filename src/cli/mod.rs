//! Command-line subcommands, one module each.
pub mod probe;
