//! `ykt hsm`: the local HSM simulator served to other hosts over the host protocol
//! (`ykt_hsm_sim::host`): KMS instances configured with `backend = "remote"` then use it.
//!
//! The HSM is unsealed as the KMS would unseal it (the officers' LMK components, or lab
//! mode); each client proves a shared secret kept in a file (hex) by HMAC challenge-response.

use crate::context::{Context, GroupCommand};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, Value};
use clap::{Args, Subcommand};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use ykt_hsm_sim::host::{ClientRegistry, HostServer};
use ykt_kms::config::Backend;
use ykt_kms::provider::LocalHsm;
use zeroize::Zeroizing;

/// The HSM commands.
#[derive(Subcommand)]
pub enum HsmCommand {
    /// Serve the local HSM over the host protocol until SIGINT (Ctrl-C) or SIGTERM; the
    /// listening address is printed on standard error first.
    Serve(ServeArgs),
}

impl GroupCommand for HsmCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Serve(args) => args.run(context),
        }
    }
}

/// Arguments of `ykt hsm serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:1500")]
    listen: String,
    /// A client the HSM accepts, as NAME=SECRET_FILE; the file holds the shared secret in
    /// hex, at least 16 bytes (repeat for each client).
    #[arg(long = "client", value_name = "NAME=SECRET_FILE", required = true)]
    clients: Vec<String>,
    /// An officer bringing an LMK component to unseal the HSM (officers mode only; repeat).
    #[arg(long = "officer", value_name = "NAME")]
    holders: Vec<String>,
}

/// The shortest client secret accepted.
const MIN_SECRET_LEN: usize = 16;

impl ServeArgs {
    /// Serves the HSM until a signal arrives, then reports what it served.
    pub fn run(self, context: &Context) -> Result<Report> {
        let config = context.config();
        if config.hsm.backend != Backend::Local {
            return Err(CliError::Input {
                arg: "hsm.backend",
                reason: "only the local HSM can be served".into(),
            });
        }
        if !LocalHsm::exists(&config.hsm_dir()) {
            return Err(CliError::NoKms(context.data_dir().display().to_string()));
        }
        let mut registry = ClientRegistry::new();
        let mut names = Vec::with_capacity(self.clients.len());
        for client in &self.clients {
            let (name, file) = client.split_once('=').ok_or_else(|| CliError::Input {
                arg: "--client",
                reason: "must be NAME=SECRET_FILE".into(),
            })?;
            let secret = read_client_secret(file)?;
            registry.add(name, &secret);
            names.push(name.to_owned());
        }
        let hsm = context.open_local_hsm(&self.holders)?;
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(CliError::Signals)?;
        }
        let mut server = HostServer::bind(&self.listen, Arc::clone(hsm.engine()), registry)
            .map_err(|source| CliError::Serve {
                address: self.listen.clone(),
                source,
            })?;
        let address = server.local_addr();
        eprintln!("ykt: HSM listening on {address}");
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        server.stop();
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("listen", address.to_string())
                .with("clients", Value::list(names))
                .with("lmk_kcv", hsm.lmk_kcv().to_string()),
        )))
    }
}

/// Reads a client secret of at least [`MIN_SECRET_LEN`] bytes kept in a file as hex.
fn read_client_secret(path: &str) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = ykt_kms::config::read_hex_secret(Path::new(path), "--client")?;
    if bytes.len() < MIN_SECRET_LEN {
        return Err(CliError::Input {
            arg: "--client",
            reason: format!("{path}: the secret must be at least {MIN_SECRET_LEN} bytes"),
        });
    }
    Ok(bytes)
}
