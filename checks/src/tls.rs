//! TLS client settings for https checks: one verifying, one not (`tls_verify = false`, for
//! real servers with self-signed or internal certificates). directord's async probes and
//! `lvsadm genhash`'s blocking fetch handshake with the same settings.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use crate::spec::Tls;

pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}

/// The two client configurations, built once: loading the system roots reads hundreds of
/// files.
pub struct Configs {
    verified: Arc<ClientConfig>,
    unverified: Arc<ClientConfig>,
}

impl Configs {
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
        Configs {
            verified: Arc::new(verified),
            unverified: Arc::new(unverified),
        }
    }

    /// The configuration a check's `tls_verify` asks for.
    pub fn for_check(&self, tls: &Tls) -> Arc<ClientConfig> {
        if tls.verify {
            self.verified.clone()
        } else {
            self.unverified.clone()
        }
    }
}

/// A check's `sni` is not a DNS name rustls can send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SNI name {0:?}")]
pub struct InvalidSni(pub String);

/// The name the handshake is for. An IP address as the server name makes rustls send no SNI
/// and verify the certificate's IP SAN, which is what a check without `sni` means.
pub fn server_name(tls: &Tls, ip: IpAddr) -> Result<ServerName<'static>, InvalidSni> {
    match &tls.sni {
        Some(name) => ServerName::try_from(name.clone()).map_err(|_| InvalidSni(name.clone())),
        None => Ok(ServerName::IpAddress(ip.into())),
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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
