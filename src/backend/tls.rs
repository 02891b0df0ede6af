//! TLS client settings shared by the LDAP and SMTP clients: rustls with ring, trusting the
//! operator's CA file if one is given, else the system's roots.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::{BackendError, BackendResult};

pub fn client_config(ca_file: Option<&Path>) -> BackendResult<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(ca_file) => {
            let pem = crate::files::read_regular(ca_file, crate::files::SETTING_LIMIT)
                .map_err(|e| BackendError::Other(format!("cannot read the CA file: {e}")))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    BackendError::Other(format!(
                        "{} is not a PEM certificate file: {e}",
                        ca_file.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    BackendError::Other(format!(
                        "{}: unusable CA certificate: {e}",
                        ca_file.display()
                    ))
                })?;
            }
        }
        None => {
            // Certificates the system cannot parse are skipped, as every TLS client does.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
