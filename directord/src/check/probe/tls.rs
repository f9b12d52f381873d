//! TLS client settings for https checks: one verifying, one not (`tls_verify = false`, for
//! real servers with self-signed or internal certificates).

use std::net::IpAddr;
use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

use super::reactor::Conn;
use super::{ProbeError, down, io_failure};
use crate::check::spec::Tls;

pub(crate) struct Clients {
    verified: TlsConnector,
    unverified: TlsConnector,
}

pub(crate) fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}

impl Clients {
    pub fn new(roots: RootCertStore) -> Self {
        let provider = Arc::new(ring::default_provider());
        let verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        Clients {
            verified: TlsConnector::from(Arc::new(verified)),
            unverified: TlsConnector::from(Arc::new(unverified)),
        }
    }

    pub async fn connect(
        &self,
        tls: &Tls,
        ip: IpAddr,
        tcp: Conn,
    ) -> Result<TlsStream<Conn>, ProbeError> {
        // An IP address as the server name makes rustls send no SNI and verify the
        // certificate's IP SAN, which is what a check without `sni` means.
        let name = match &tls.sni {
            Some(name) => ServerName::try_from(name.clone())
                .map_err(|_| format!("invalid SNI name {name:?}"))?,
            None => ServerName::IpAddress(ip.into()),
        };
        let connector = if tls.verify {
            &self.verified
        } else {
            &self.unverified
        };
        connector.connect(name, tcp).await.map_err(|e| {
            match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
                Some(tls_error) => down!(Tls, "TLS handshake failed: {tls_error}"),
                None => io_failure("TLS handshake", &e),
            }
        })
    }
}

/// Accepts any certificate but still checks the handshake signatures, so the session is
/// at least with whoever holds the presented key.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
