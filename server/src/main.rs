use std::process::ExitCode;

use clap::{Parser, Subcommand};
use server::accounts::{Role, roles};
use server::{App, Settings};

/// The reference server. Settings come from `SERVER_*` environment variables (and the TOML
/// file named by `SERVER_CONFIG`).
#[derive(Debug, Parser)]
#[command(name = "server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API until SIGINT or SIGTERM (what `server` alone does).
    Serve,
    /// Give the admin role to the account with this e-mail address; it takes effect at the
    /// account's next login. Sign-up never grants a role.
    GrantAdmin { email: String },
    /// Take the admin role away from the account with this address, and end its sessions.
    RevokeAdmin { email: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    server::install_crypto_provider();
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    server::telemetry::init(settings.log_format);
    let role = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => return serve(settings).await,
        Command::GrantAdmin { email } => (email, Role::Admin),
        Command::RevokeAdmin { email } => (email, Role::User),
    };
    match roles::set(&settings, &role.0, role.1).await {
        Ok(change) => {
            println!("{change}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let app = match App::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    // One machine-readable line on stdout, so a harness can learn the bound port.
    println!(
        "{}",
        serde_json::json!({ "event": "listening", "addr": app.local_addr().to_string(), "instance": app.instance_id() })
    );
    match app.run_until(server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
