//! Configuration files: the schema ([`schema`]), loading from disk in YAML, TOML or
//! JSON ([`load()`]), and validation errors that name file, line, column and field
//! ([`ConfigError`]).
//!
//! Loading only reads and parses: it turns the files into [`LoadedConfig`] (the global
//! config, every role with its certificates as PEM text, every CRL as DER, and a content
//! fingerprint). Interpreting them (parsing certificates, globs, CIDRs) is
//! [`crate::snapshot`]'s job, which reports its problems through the same
//! [`ConfigError`] with the help of [`LoadedRole::field_error`].

mod error;
mod load;
pub mod schema;

pub use error::{ConfigError, locate_field};
pub use load::{
    CONFIG_FILE_LIMIT, CRL_FILE_LIMIT, CrlFile, LoadedConfig, LoadedRole, ROLE_FILE_LIMIT, load,
};

pub(crate) use load::load_with_fingerprint;
