//! `cnet`: parse the command line, run it, exit with its code.

use clap::Parser;

fn main() {
    let cli = cnet_cli::cli::Cli::parse();
    cnet_cli::commands::init_process(&cli.command);
    std::process::exit(cnet_cli::run(cli));
}
