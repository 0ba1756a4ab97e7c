//! x402-rs facilitator for EVM chains: `x402-rs-facilitator <config.json>`.
//!
//! The config is x402-rs's own format (see its facilitator README), EVM chains only:
//! `{ "host": "127.0.0.1", "port": 8080,
//!    "chains": { "eip155:31337": { "signers": ["0x<key>" | "$ENV"], "rpc": [{ "http": "<url>" }] } },
//!    "schemes": [{ "id": "v2-eip155-exact", "chains": "eip155:*" }] }`
//! Everything that verifies or settles a payment is x402-rs's code; this file only loads the
//! config, builds its registries and serves its routes.

use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use x402_chain_eip155::chain::config::{Eip155ChainConfig, Eip155ChainConfigInner};
use x402_chain_eip155::chain::Eip155ChainProvider;
use x402_chain_eip155::{V1Eip155Exact, V2Eip155Exact};
use x402_facilitator_local::{FacilitatorLocal, handlers};
use x402_types::chain::{ChainId, ChainProviderOps, ChainRegistry, FromConfig};
use x402_types::scheme::{
    SchemeBlueprints, SchemeConfig, SchemeRegistry, X402SchemeFacilitator,
    X402SchemeFacilitatorBuilder,
};

#[derive(Deserialize)]
struct Config {
    host: IpAddr,
    port: u16,
    chains: HashMap<ChainId, Eip155ChainConfigInner>,
    schemes: Vec<SchemeConfig>,
}

/// The registry's provider type. x402-rs's blueprints are built from `&P`; a local type lets
/// this binary implement that for its (EVM-only) provider.
#[derive(Clone)]
struct Chain(Arc<Eip155ChainProvider>);

impl ChainProviderOps for Chain {
    fn signer_addresses(&self) -> Vec<String> {
        self.0.signer_addresses()
    }
    fn chain_id(&self) -> ChainId {
        self.0.chain_id()
    }
}

/// Builds scheme `S` on the wrapped provider (x402-rs's builder for `Arc<Eip155ChainProvider>`).
macro_rules! on_chain {
    ($scheme:ty) => {
        impl X402SchemeFacilitatorBuilder<&Chain> for $scheme {
            fn build(
                &self,
                chain: &Chain,
                config: Option<serde_json::Value>,
            ) -> Result<Box<dyn X402SchemeFacilitator>, Box<dyn std::error::Error>> {
                X402SchemeFacilitatorBuilder::build(self, Arc::clone(&chain.0), config)
            }
        }
    };
}
on_chain!(V1Eip155Exact);
on_chain!(V2Eip155Exact);

async fn run(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let config: Config = serde_json::from_str(&text).map_err(|e| format!("parsing {path}: {e}"))?;

    let mut providers = HashMap::new();
    for (chain_id, inner) in config.chains {
        let chain_config = Eip155ChainConfig {
            chain_reference: chain_id
                .clone()
                .try_into()
                .map_err(|e| format!("chains.{chain_id}: {e}"))?,
            inner,
        };
        let provider = Eip155ChainProvider::from_config(&chain_config)
            .await
            .map_err(|e| format!("chains.{chain_id}: {e}"))?;
        providers.insert(chain_id, Chain(Arc::new(provider)));
    }
    let blueprints = SchemeBlueprints::new()
        .and_register(V1Eip155Exact)
        .and_register(V2Eip155Exact);
    let schemes = SchemeRegistry::build(ChainRegistry::new(providers), blueprints, &config.schemes);
    eprintln!("x402-rs facilitator: {schemes:?}");

    let app = handlers::routes().with_state(Arc::new(FacilitatorLocal::new(schemes)));
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.host, config.port)).await?;
    eprintln!("x402-rs facilitator: listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: x402-rs-facilitator <config.json>");
        std::process::exit(2);
    };
    if let Err(e) = run(&path).await {
        eprintln!("x402-rs facilitator: {e}");
        std::process::exit(1);
    }
}
