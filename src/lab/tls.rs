//! The lab's TLS material: a CA generated at start (rcgen), a server certificate it signs for
//! `localhost` and `127.0.0.1`, client certificates it issues on request, and the rustls
//! server configuration (ring provider), optionally requiring a client certificate from the
//! lab CA.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The lab's certificate authority and server certificate.
pub struct Authority {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("generating the lab's TLS certificates failed: {e}"))
}

impl Authority {
    /// Generates a fresh CA and a server certificate for localhost/127.0.0.1 (and `extra_names`).
    pub fn generate(extra_names: &[String], kind: super::ServerCert) -> io::Result<Authority> {
        let ca_key = KeyPair::generate().map_err(tls_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "easync-lab test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_error)?;

        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(extra_names.iter().cloned());
        if kind == super::ServerCert::WrongHost {
            names = vec!["wrong-host.invalid".to_string()];
        }
        let server_key = KeyPair::generate().map_err(tls_error)?;
        let mut server_params = CertificateParams::new(names).map_err(tls_error)?;
        if kind == super::ServerCert::Expired {
            server_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            server_params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        server_params
            .distinguished_name
            .push(DnType::CommonName, "easync-lab");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(tls_error)?;
        Ok(Authority {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            ca_params,
            ca_key,
            server_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
        })
    }

    /// The CA certificate in PEM, for clients to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Issues a client certificate for `common_name`; returns (certificate PEM, key PEM).
    pub fn issue_client(&self, common_name: &str) -> io::Result<(String, String)> {
        let key = KeyPair::generate().map_err(tls_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(tls_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The rustls server configuration; with `require_client_cert` only clients holding a
    /// certificate from the lab CA get through the handshake.
    pub fn server_config(
        &self,
        require_client_cert: bool,
    ) -> io::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?;
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).map_err(tls_error)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(tls_error)?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let config = builder
            .with_single_cert(vec![self.server_der.clone()], key)
            .map_err(tls_error)?;
        Ok(Arc::new(config))
    }
}
