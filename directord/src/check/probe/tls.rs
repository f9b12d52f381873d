//! The TLS handshake of https checks, over the reactor's connection, with lvs-checks'
//! client settings.

use std::net::IpAddr;

use lvs_checks::tls::{Configs, server_name};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{Error, RootCertStore};

use super::reactor::Conn;
use super::{ProbeError, down, io_failure};
use crate::check::spec::Tls;

pub(crate) use lvs_checks::tls::system_roots;

pub(crate) struct Clients(Configs);

impl Clients {
    pub fn new(roots: RootCertStore) -> Self {
        Clients(Configs::new(roots))
    }

    pub async fn connect(
        &self,
        tls: &Tls,
        ip: IpAddr,
        tcp: Conn,
    ) -> Result<TlsStream<Conn>, ProbeError> {
        let name = server_name(tls, ip).map_err(|e| ProbeError::from(e.to_string()))?;
        let connector = TlsConnector::from(self.0.for_check(tls));
        connector.connect(name, tcp).await.map_err(|e| {
            match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
                Some(tls_error) => down!(Tls, "TLS handshake failed: {tls_error}"),
                None => io_failure("TLS handshake", &e),
            }
        })
    }
}
