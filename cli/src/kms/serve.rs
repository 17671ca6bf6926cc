//! `ykt kms serve`: the KMS API over HTTPS with mutual TLS (`ykt_api`), until SIGINT or
//! SIGTERM; then it stops accepting, lets requests in flight finish and reports.

use crate::context::{Context, Need};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report};
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;

/// Arguments of `ykt kms serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// A name clients reach the server by, for its certificate (repeat for each)
    /// [default: the listening address].
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// Requests per second each client may make, sustained (token bucket).
    #[arg(long, value_name = "N", default_value_t = ykt_api::server::RateLimit::default().per_second)]
    rate_limit: f64,
    /// Requests each client may make at once after a quiet spell.
    #[arg(long, value_name = "N", default_value_t = ykt_api::server::RateLimit::default().burst)]
    burst: f64,
}

impl ServeArgs {
    /// Serves until a signal.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = Arc::new(context.open(Need::Hsm(&[]))?);
        let hosts = if self.hosts.is_empty() {
            vec![self.listen.ip().to_string()]
        } else {
            self.hosts
        };
        context.block_on(async {
            if !(self.rate_limit > 0.0 && self.burst >= 1.0) {
                return Err(CliError::Input {
                    arg: "--rate-limit",
                    reason: "the rate must be above 0 and the burst at least 1".into(),
                });
            }
            let server = ykt_api::Server::bind(kms, self.listen, hosts.clone())
                .await?
                .with_rate_limit(ykt_api::server::RateLimit {
                    per_second: self.rate_limit,
                    burst: self.burst,
                });
            let address = server.local_addr()?;
            eprintln!("ykt: serving the KMS API at https://{address}; stop with Ctrl-C");
            server.serve(stopped()).await?;
            Ok::<_, CliError>(Report::ok(Output::Record(
                Record::new()
                    .with("listen", address.to_string())
                    .with("hosts", crate::output::Value::list(hosts)),
            )))
        })
    }
}

/// Completes at SIGINT or SIGTERM.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
