//! The `leadstream` binary: settings → logger → bind → [`leadstream::run`] until SIGINT/SIGTERM,
//! or one of its commands ([`leadstream::backup`], `migrate-to-postgres`).

use std::process::ExitCode;

use leadstream::config::Invocation;

#[tokio::main]
async fn main() -> ExitCode {
    // RUST_LOG overrides this. A connection a client drops mid-request is its business, not
    // ours, so `server` logs it at debug, not as an error.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match Invocation::from_env_and_args() {
        Ok(Invocation::Serve(s)) => *s,
        Ok(Invocation::Backup { db, args }) => {
            return match leadstream::backup(db, args).await {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("leadstream: backup failed: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Invocation::MigrateToPostgres { db, to }) => {
            return match leadstream::store::migrate_to_postgres(&db, &to).await {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("leadstream: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Err(e) => {
            eprintln!("leadstream: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("leadstream: cannot listen on {}: {e}", settings.listen);
            return ExitCode::from(2);
        }
    };
    match leadstream::run(settings, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leadstream: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
