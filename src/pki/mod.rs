//! Certificates: decoding, parsing, chain verification, name matching.
pub mod cert;
pub mod chain;
pub mod der;
pub mod glob;
pub mod pem;
