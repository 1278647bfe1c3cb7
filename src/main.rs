//! The `spillway` binary: CLI → Config::load → tracing → spillway::run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// A caching proxy for PostgreSQL that speaks the Redis protocol.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (default: config/default.toml when present, else built-in defaults).
    #[arg(long, env = "SPILLWAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Look at a write-ahead log without serving (read-only).
    Wal {
        #[command(subcommand)]
        action: WalAction,
    },
    /// Asks the running spillway (at `server.listen` of the config) to
    /// reload its configuration, as SIGHUP does; prints the outcome.
    Reload,
    /// Prints the SQL that installs the invalidation triggers of every
    /// namespace with `invalidate = true` (for DBAs, with `install_trigger = false`).
    Triggers {
        /// Print the SQL (the only action).
        #[arg(long)]
        print: bool,
    },
}

#[derive(clap::Subcommand)]
enum WalAction {
    /// Checks every segment and record; exit 0 when the log would open cleanly.
    Verify { dir: PathBuf },
    /// Prints one line per record: segment, offset, sequence, version, payload length.
    Inspect { dir: PathBuf },
}

/// `spillway wal verify|inspect DIR`.
fn wal_command(action: WalAction) -> ExitCode {
    match action {
        WalAction::Verify { dir } => match spillway::wal::verify(&dir) {
            Ok(report) => {
                println!("{report}");
                if report.is_ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("spillway wal verify: {e}");
                ExitCode::FAILURE
            }
        },
        WalAction::Inspect { dir } => {
            match spillway::wal::inspect(&dir, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("spillway wal inspect: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `spillway reload`: sends `SPILLWAY RELOAD` (after `AUTH` when the
/// config sets `requirepass`) to the address the config names.
fn reload_command(config: Option<&std::path::Path>) -> ExitCode {
    let config = match spillway::config::Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("spillway reload: {e}");
            return ExitCode::from(2);
        }
    };
    let server = &config.server;
    match spillway::reload::request(&server.listen, server.requirepass.as_deref()) {
        Ok(reply) => {
            println!("{reply}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spillway reload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `spillway triggers --print`.
fn triggers_command(config: Option<&std::path::Path>, print: bool) -> ExitCode {
    if !print {
        eprintln!("spillway triggers: nothing to do without --print");
        return ExitCode::from(2);
    }
    let config = match spillway::config::Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("spillway triggers: {e}");
            return ExitCode::from(2);
        }
    };
    let watched: Vec<_> = config.namespaces.iter().filter(|n| n.invalidate).collect();
    if watched.is_empty() {
        eprintln!("spillway triggers: no namespace has invalidate = true");
        return ExitCode::FAILURE;
    }
    for ns in watched {
        println!("-- namespace {}: table {}", ns.name, ns.table);
        print!("{}", spillway::mapped::triggers::install_sql(ns));
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Wal { action }) => return wal_command(action),
        Some(Command::Triggers { print }) => return triggers_command(cli.config.as_deref(), print),
        Some(Command::Reload) => return reload_command(cli.config.as_deref()),
        None => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match spillway::config::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(wait_for_signal(shutdown.clone()));
        match spillway::run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGTERM or SIGINT starts the graceful shutdown.
async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
