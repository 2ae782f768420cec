//! The `sealmail` binary: logging set-up, then the command line.

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALMAIL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr must not stop the server (its eprintln! panics).
        .log_internal_errors(false)
        .init();
    match sealmail::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of standard output went away (`sealmail alias list
        // | head`): nothing more to say, and nothing went wrong.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sealmail: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
