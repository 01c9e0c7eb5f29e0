//! TLS for the transport: our own rustls `ClientConfig` (ring provider; trust store, extra
//! CA, optional SPKI pins, optional client certificate) plugged into ureq as a connector, and
//! the mapping of rustls failures to errors a field technician can act on.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use super::config::TlsOptions;
use super::der;
use super::error::{Error, Result};

/// The crypto provider: ring, never aws-lc.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Base64 of SHA-256 over the SubjectPublicKeyInfo of `cert` (HPKP pin form), or `None` when
/// the certificate cannot be walked.
pub fn spki_pin(cert: &[u8]) -> Option<String> {
    let spki = der::subject_public_key_info(cert)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    Some(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

fn decode_pin(pin: &str) -> Result<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(pin.trim())
        .map_err(|_| Error::Config(format!("tls.pin_sha256: {pin:?} is not base64")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        Error::Config(format!(
            "tls.pin_sha256: {pin:?} is not a SHA-256 hash (32 bytes, 44 base64 characters)"
        ))
    })
}

/// The server certificate verifier the options describe: WebPKI over the trust store and
/// `ca_file` (whose certificates are also accepted as the server's own), plus the pins.
/// [`client_config`] uses it; `easyncctl diagnose` wraps it to show the chain it judged.
pub fn server_verifier(options: &TlsOptions) -> Result<Arc<dyn ServerCertVerifier>> {
    let mut roots = RootCertStore::empty();
    let mut sources = 0;
    if let Some(store) = &options.trust_store {
        if store.exists() {
            sources += 1;
            let (added, ignored) =
                roots.add_parsable_certificates(read_certs(store, "trust store")?);
            log::debug!(
                "trust store {}: {added} roots, {ignored} ignored",
                store.display()
            );
        } else {
            log::debug!("trust store {} not found", store.display());
        }
    }
    // Certificates of tls.ca_file, also trusted as they are when a server presents one of
    // them itself (self-signed server certificates often carry CA:TRUE, which WebPKI refuses
    // for an end entity).
    let mut exact = Vec::new();
    if let Some(ca) = &options.ca_file {
        sources += 1;
        let certs = read_certs(ca, "tls.ca_file")?;
        if certs.is_empty() {
            return Err(Error::Config(format!(
                "tls.ca_file {}: no PEM certificate in it",
                ca.display()
            )));
        }
        for cert in certs {
            exact.push(cert.clone());
            roots.add(cert).map_err(|e| {
                Error::Config(format!(
                    "tls.ca_file {}: unusable certificate: {e}",
                    ca.display()
                ))
            })?;
        }
    }
    if sources == 0 || roots.is_empty() {
        return Err(Error::Config(format!(
            "no trusted certificates: the trust store {} is missing or empty; install \
             ca-certificates or set tls.ca_file",
            options
                .trust_store
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none)".into())
        )));
    }
    let pins = options
        .pins
        .iter()
        .map(|p| decode_pin(p))
        .collect::<Result<Vec<_>>>()?;

    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| Error::Config(format!("TLS trust: {e}")))?;
    Ok(Arc::new(PinningVerifier {
        inner: webpki,
        pins,
        exact,
    }))
}

/// Builds the rustls client configuration from the options.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let verifier = server_verifier(options)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);

    let config = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "tls.client_cert")?;
            if chain.is_empty() {
                return Err(Error::Config(format!(
                    "tls.client_cert {}: no PEM certificate in it",
                    cert.display()
                )));
            }
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                Error::Config(format!(
                    "tls.client_key {}: no usable private key ({e})",
                    key.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                Error::Config(format!(
                    "tls.client_cert and tls.client_key do not form a usable pair: {e}"
                ))
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::Config(
                "tls.client_cert and tls.client_key must be set together".into(),
            ));
        }
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<core::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("{what} {}: cannot read PEM ({e})", path.display())))
}

/// The pin check failed; carried inside the rustls error so it can be told apart.
#[derive(Debug)]
pub struct PinMismatchError {
    pub actual: String,
}

impl fmt::Display for PinMismatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server key {} matches no pin", self.actual)
    }
}

impl std::error::Error for PinMismatchError {}

/// The WebPKI verifier plus, when pins are configured, the requirement that the end-entity
/// key is one of them.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
    /// The certificates of `tls.ca_file`, accepted as the server's own certificate.
    exact: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> core::result::Result<ServerCertVerified, rustls::Error> {
        let verified = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => v,
            // The very certificate the configuration trusts, presented as the server's own
            // (a self-signed server with CA:TRUE): trusted as configured, but it must still
            // name the host.
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(_)))
                if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                ServerCertVerified::assertion()
            }
            Err(e) => return Err(e),
        };
        if self.pins.is_empty() {
            return Ok(verified);
        }
        let spki = der::subject_public_key_info(end_entity.as_ref()).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        let digest = ring::digest::digest(&ring::digest::SHA256, spki);
        if self.pins.iter().any(|p| p.as_slice() == digest.as_ref()) {
            Ok(verified)
        } else {
            let actual = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
            log::warn!("TLS pin mismatch: the server's key is {actual}");
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatchError { actual })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> core::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> core::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The typed error for a rustls failure talking to `host`.
pub fn map_rustls_error(e: &rustls::Error, host: &str) -> Error {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                Error::CertificateNotTrusted(c.to_string())
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Error::CertificateNameMismatch {
                    host: host.to_string(),
                }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => Error::CertificateExpired,
            CertificateError::Other(other) => match other.0.downcast_ref::<PinMismatchError>() {
                Some(pin) => Error::PinMismatch {
                    actual: pin.actual.clone(),
                },
                None => Error::CertificateNotTrusted(c.to_string()),
            },
            other => Error::CertificateNotTrusted(other.to_string()),
        },
        rustls::Error::AlertReceived(
            alert @ (A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied),
        ) => Error::ClientCertificateRejected(format!("server alert {alert:?}")),
        other => Error::Tls(other.to_string()),
    }
}

/// Finds a rustls error inside an I/O error (rustls reports handshake failures that way).
pub fn rustls_error_in(e: &std::io::Error) -> Option<&rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    // Bounded walk down the source chain.
    for _ in 0..8 {
        let current = source?;
        if let Some(r) = current.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(u) = current.downcast_ref::<ureq::Error>() {
            match u {
                ureq::Error::Rustls(r) => return Some(r),
                ureq::Error::Io(io) => {
                    source = io.get_ref().map(|r| r as _);
                    continue;
                }
                _ => return None,
            }
        }
        source = current.source();
    }
    None
}

/// A ureq connector that wraps the chained TCP transport in TLS with our configuration.
#[derive(Debug)]
pub struct TlsConnector {
    pub config: Arc<ClientConfig>,
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> core::result::Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .authority()
            .map(|a| a.host().trim_start_matches('[').trim_end_matches(']'))
            .ok_or(ureq::Error::Tls("the URL has no host"))?;
        let name = ServerName::try_from(host.to_string()).map_err(|_| {
            ureq::Error::Tls("the server name is not a valid DNS name or IP address")
        })?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        if let Err(e) = conn.complete_io(&mut sock) {
            // Keep the rustls error typed so the caller can say what is wrong.
            if let Some(r) = e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) {
                return Err(ureq::Error::Rustls(r.clone()));
            }
            return Err(e.into());
        }
        log::trace!("TLS established with {host}");
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// An established TLS connection as a ureq transport.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> core::result::Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> core::result::Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_must_be_sha256_in_base64() {
        assert!(decode_pin("not base64!").is_err());
        assert!(decode_pin("AAAA").is_err());
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(decode_pin(&good).unwrap(), [7u8; 32]);
    }

    #[test]
    fn missing_trust_is_a_clear_config_error() {
        let options = TlsOptions {
            trust_store: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let err = client_config(&options).unwrap_err();
        assert!(err.to_string().contains("tls.ca_file"), "{err}");
    }

    #[test]
    fn certificate_errors_map_to_technician_messages() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(matches!(
            map_rustls_error(&e, "h"),
            Error::CertificateNotTrusted(_)
        ));
        let pin = rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            Arc::new(PinMismatchError { actual: "X".into() }),
        )));
        let mapped = map_rustls_error(&pin, "h");
        assert!(mapped.to_string().starts_with("pin mismatch"), "{mapped}");
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(
            map_rustls_error(&name, "mail.example.com")
                .to_string()
                .contains("mail.example.com")
        );
    }
}
