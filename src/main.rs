//! The `certgate` binary: everything lives in the library ([`certgate::cli`]) so that
//! tests and other binaries can run the same code.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    certgate::cli::main()
}
