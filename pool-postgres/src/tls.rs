//! TLS with rustls (cargo feature `tls`), honouring libpq's `sslmode`:
//!
//! | `sslmode` | encrypted | certificate checked against `sslrootcert` | host name checked |
//! |---|---|---|---|
//! | `disable` | no | — | — |
//! | `prefer` (default) | if the server offers it | no | no |
//! | `require` | yes | no | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! `sslrootcert` names a PEM file of trusted CA certificates; the
//! `verify-*` modes need it. tokio-postgres itself only knows `disable`,
//! `prefer` and `require`, so the `verify-*` modes reach it as `require`
//! while the verification is done by the rustls configuration built here.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config_error::ConfigError;

pub(crate) use tokio_postgres_rustls::MakeRustlsConnect;

/// How much of the server's certificate to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// `prefer`, `require`: encrypt, check nothing (as libpq does without a root certificate).
    Nothing,
    /// `verify-ca`: the chain must lead to a trusted CA.
    Chain,
    /// `verify-full`: the chain, and the host name the client connected to.
    ChainAndName,
}

/// The TLS connector for `verify` with the CAs in `root_cert`.
pub(crate) fn connector(verify: Verify, root_cert: Option<&Path>) -> Result<MakeRustlsConnect, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("sslmode", "(tls)", e.to_string()))?;
    let config = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider.signature_verification_algorithms)))
            .with_no_client_auth(),
        Verify::Chain | Verify::ChainAndName => {
            let path = root_cert.ok_or_else(|| {
                ConfigError::new(
                    "sslrootcert",
                    "(unset)",
                    "sslmode=verify-ca and verify-full need sslrootcert=/path/to/ca.pem, the CA certificates to trust",
                )
            })?;
            let roots = load_roots(path)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ConfigError::new("sslrootcert", path.display().to_string(), e.to_string()))?;
            let verifier: Arc<dyn ServerCertVerifier> =
                if verify == Verify::Chain { Arc::new(IgnoreName(webpki)) } else { webpki };
            builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn load_roots(path: &Path) -> Result<RootCertStore, ConfigError> {
    let shown = path.display().to_string();
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigError::new("sslrootcert", shown.clone(), format!("cannot be read: {e}")))?;
    for cert in certs {
        let cert = cert
            .map_err(|e| ConfigError::new("sslrootcert", shown.clone(), format!("is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| {
            ConfigError::new("sslrootcert", shown.clone(), format!("holds a bad certificate: {e}"))
        })?;
    }
    if roots.is_empty() {
        return Err(ConfigError::new("sslrootcert", shown, "holds no certificate"));
    }
    Ok(roots)
}

/// `verify-ca`: the full chain check, except that the certificate need not
/// name the host.
#[derive(Debug)]
struct IgnoreName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: any certificate, but the handshake signatures
/// are still checked (so the session key really is the server's).
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
