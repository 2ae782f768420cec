//! The `sealmail` binary: logging set-up, then the command line.

fn main() -> std::process::ExitCode {
    sealmail::util::log::init();
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
