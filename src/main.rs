//! The `policy` command-line tool: check, eval, test and fmt policies.

#![forbid(unsafe_code)]

mod cli;

fn main() {
    std::process::exit(cli::run());
}
