use std::process::ExitCode;

use server::{App, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    server::install_crypto_provider();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    server::telemetry::init(settings.log_format);
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
