//! The TLS context of the links to the nodes: OpenSSL (the one TLS library
//! of the workspace), peers verified against the system's roots or the
//! configured CA file.
//!
//! The driver checks each node's certificate chain; it does not compare the
//! certificate's names with the address it dialled (nodes are reached by
//! the addresses the cluster announces, often bare IPs). A deployment that
//! needs name checks pins its own CA in `tls_ca`.

use crate::options::ScyllaOptions;
use openssl::ssl::{SslContext, SslMethod, SslVerifyMode};
use seqline_core::{Error, Result};

pub(crate) fn context(options: &ScyllaOptions) -> Result<SslContext> {
    let setup = |e: openssl::error::ErrorStack| Error::Config(format!("scylla TLS setup: {e}"));
    let mut b = SslContext::builder(SslMethod::tls_client()).map_err(setup)?;
    b.set_verify(SslVerifyMode::PEER);
    match &options.tls_ca {
        Some(ca) => {
            if !ca.is_file() {
                return Err(Error::Config(format!(
                    "scylla TLS CA file {} does not exist",
                    ca.display()
                )));
            }
            b.set_ca_file(ca)
                .map_err(|e| Error::Config(format!("scylla TLS CA file {}: {e}", ca.display())))?;
        }
        None => b.set_default_verify_paths().map_err(setup)?,
    }
    Ok(b.build())
}
