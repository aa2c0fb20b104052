//! `tls_server_config` of the web config, built into a rustls server configuration (aws-lc-rs,
//! the provider reqwest already uses; no OpenSSL), and the client-certificate checks that run
//! after a handshake (`client_allowed_sans`).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};

use super::web_config::{read, TlsFile, WebConfigError};

/// The toolkit's `client_auth_type`, Go's `tls.ClientAuthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (default).
    None,
    /// `RequestClientCert`: asked for, not required, not verified.
    Request,
    /// `RequireAnyClientCert`: required, not verified.
    RequireAny,
    /// `VerifyClientCertIfGiven`: verified against the client CA when presented.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: required and verified: the only mode that authenticates.
    RequireAndVerify,
}

impl ClientAuth {
    fn parse(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "" | "NoClientCert" => ClientAuth::None,
            "RequestClientCert" => ClientAuth::Request,
            "RequireAnyClientCert" => ClientAuth::RequireAny,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
            _ => return None,
        })
    }

    /// Whether a presented certificate was verified against the client CA.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
        )
    }
}

/// One entry of `client_allowed_sans`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedSan {
    Dns(String),
    Ip(IpAddr),
    Uri(String),
}

/// TLS as configured: the rustls configuration and what to check after the handshake.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub server_config: Arc<ServerConfig>,
    pub client_auth: ClientAuth,
    pub allowed_sans: Vec<AllowedSan>,
}

impl TlsSettings {
    /// `client_allowed_sans`: whether the client's leaf certificate carries one of the allowed
    /// subject alternative names (exact match, like the toolkit). Always true when the list is
    /// empty.
    pub fn client_allowed(&self, peer: Option<&[CertificateDer<'static>]>) -> bool {
        if self.allowed_sans.is_empty() {
            return true;
        }
        let Some(leaf) = peer.and_then(|c| c.first()) else {
            return false;
        };
        let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        self.allowed_sans.iter().any(|san| match san {
            AllowedSan::Dns(name) => cert.valid_dns_names().any(|n| n.eq_ignore_ascii_case(name)),
            AllowedSan::Uri(uri) => cert.valid_uri_names().any(|u| u == uri),
            AllowedSan::Ip(ip) => cert
                .verify_is_valid_for_subject_name(&ServerName::IpAddress((*ip).into()))
                .is_ok(),
        })
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Builds the TLS settings from `tls_server_config`; `dir` resolves relative paths.
pub(super) fn settings(t: &TlsFile, dir: &Path) -> Result<TlsSettings, WebConfigError> {
    fn inv(key: &str, message: impl Into<String>) -> WebConfigError {
        WebConfigError::invalid(key, message)
    }
    let pem = |inline: &Option<String>,
               file: &Option<std::path::PathBuf>,
               name: &str|
     -> Result<Option<Vec<u8>>, WebConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(inv(
                &format!("tls_server_config.{name}"),
                format!("set either {name} or {name}_file, not both"),
            )),
            (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
            (None, Some(path)) => Ok(Some(read(&dir.join(path))?.into_bytes())),
            (None, None) => Ok(None),
        }
    };
    let cert = pem(&t.cert, &t.cert_file, "cert")?
        .ok_or_else(|| inv("tls_server_config.cert_file", "missing (or cert inline)"))?;
    let key = pem(&t.key, &t.key_file, "key")?
        .ok_or_else(|| inv("tls_server_config.key_file", "missing (or key inline)"))?;
    let client_ca = pem(&t.client_ca, &t.client_ca_file, "client_ca")?;

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            inv(
                "tls_server_config.cert_file",
                format!("not PEM certificates: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(inv(
            "tls_server_config.cert_file",
            "holds no PEM certificate",
        ));
    }
    // The error never quotes the key.
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|_| {
        inv(
            "tls_server_config.key_file",
            "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;

    let client_auth = ClientAuth::parse(t.client_auth_type.as_deref().unwrap_or("").trim())
        .ok_or_else(|| {
            inv(
                "tls_server_config.client_auth_type",
                "must be NoClientCert, RequestClientCert, RequireAnyClientCert, \
                 VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            )
        })?;
    if client_ca.is_some() && client_auth == ClientAuth::None {
        return Err(inv(
            "tls_server_config.client_ca_file",
            "a client CA is configured without a client_auth_type",
        ));
    }
    if client_auth.verifies() && client_ca.is_none() {
        return Err(inv(
            "tls_server_config.client_ca_file",
            "required by this client_auth_type",
        ));
    }
    let allowed_sans = t
        .client_allowed_sans
        .iter()
        .flatten()
        .map(|s| allowed_san(s))
        .collect::<Result<Vec<_>, _>>()?;
    if !allowed_sans.is_empty()
        && !matches!(
            client_auth,
            ClientAuth::RequireAny | ClientAuth::RequireAndVerify
        )
    {
        return Err(inv(
            "tls_server_config.client_allowed_sans",
            "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
        ));
    }

    let mut provider = provider();
    if let Some(names) = &t.cipher_suites {
        provider.cipher_suites = cipher_suites(&provider, names)?;
    }
    if let Some(names) = &t.curve_preferences {
        provider.kx_groups = curves(&provider, names)?;
    }
    let provider = Arc::new(provider);
    let versions = versions(t.min_version.as_deref(), t.max_version.as_deref())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| inv("tls_server_config", e.to_string()))?;
    let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
        ClientAuth::None => Arc::new(rustls::server::NoClientAuth),
        ClientAuth::Request | ClientAuth::RequireAny => Arc::new(AnyClientCert {
            mandatory: client_auth == ClientAuth::RequireAny,
            provider: provider.clone(),
        }),
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(client_ca.as_deref().unwrap_or_default()) {
                let ca = ca.map_err(|e| {
                    inv(
                        "tls_server_config.client_ca_file",
                        format!("not PEM certificates: {e}"),
                    )
                })?;
                roots
                    .add(ca)
                    .map_err(|e| inv("tls_server_config.client_ca_file", format!("{e}")))?;
            }
            let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if client_auth == ClientAuth::VerifyIfGiven {
                b = b.allow_unauthenticated();
            }
            b.build()
                .map_err(|e| inv("tls_server_config.client_ca_file", e.to_string()))?
        }
    };
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            inv(
                "tls_server_config.key_file",
                format!("does not match the certificate or is unusable: {e}"),
            )
        })?;
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    // HTTP/1.1 only (see the module docs of `web_config`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsSettings {
        server_config: Arc::new(config),
        client_auth,
        allowed_sans,
    })
}

fn allowed_san(s: &str) -> Result<AllowedSan, WebConfigError> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(AllowedSan::Ip(ip));
    }
    if s.contains("://") {
        return Ok(AllowedSan::Uri(s.to_owned()));
    }
    if s.contains('@') {
        return Err(WebConfigError::invalid(
            "tls_server_config.client_allowed_sans",
            "e-mail SANs are not supported (rustls/webpki): use DNS names, IP addresses or URIs",
        ));
    }
    if s.is_empty() || ServerName::try_from(s.to_owned()).is_err() {
        return Err(WebConfigError::invalid(
            "tls_server_config.client_allowed_sans",
            "an entry is neither a DNS name, an IP address nor a URI",
        ));
    }
    Ok(AllowedSan::Dns(s.to_owned()))
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
    let parse = |key: &str, v: &str| -> Result<u8, WebConfigError> {
        match v.trim() {
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            "TLS10" | "TLS11" => Err(WebConfigError::invalid(
                key,
                "TLS 1.0 and 1.1 are not supported (rustls implements TLS12 and TLS13)",
            )),
            _ => Err(WebConfigError::invalid(key, "must be TLS12 or TLS13")),
        }
    };
    let lo = parse("tls_server_config.min_version", min.unwrap_or("TLS12"))?;
    let hi = parse("tls_server_config.max_version", max.unwrap_or("TLS13"))?;
    if lo > hi {
        return Err(WebConfigError::invalid(
            "tls_server_config.min_version",
            "is above max_version",
        ));
    }
    let mut out = Vec::new();
    if hi == 13 {
        out.push(&rustls::version::TLS13);
    }
    if lo == 12 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

/// `cipher_suites` (Go names) → the provider's suites: the named TLS 1.2 suites in the given
/// order, and every TLS 1.3 suite (Go does not let them be configured either).
fn cipher_suites(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<rustls::SupportedCipherSuite>, WebConfigError> {
    let key = "tls_server_config.cipher_suites";
    let mut out: Vec<rustls::SupportedCipherSuite> = provider
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .collect();
    let tls12: Vec<String> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS12)
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    for name in names {
        // Go also knows the CHACHA20 suites without the `_SHA256` suffix.
        let canonical = match name.trim() {
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            }
            other => other,
        };
        if let Some(suite) = provider
            .cipher_suites
            .iter()
            .find(|s| format!("{:?}", s.suite()) == canonical)
        {
            if suite.version() == &rustls::version::TLS12 && !out.contains(suite) {
                out.push(*suite);
            }
            continue;
        }
        return Err(WebConfigError::invalid(
            key,
            format!(
                "{} is not supported (rustls offers only AEAD ECDHE suites for TLS 1.2: {})",
                if canonical.starts_with("TLS_") && canonical.len() <= 64 {
                    canonical
                } else {
                    "an entry"
                },
                tls12.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// `curve_preferences` (Go names) → the provider's key-exchange groups, in the given order.
fn curves(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, WebConfigError> {
    let mut out = Vec::new();
    for name in names {
        let group = match name.trim() {
            "CurveP256" | "P256" => rustls::NamedGroup::secp256r1,
            "CurveP384" | "P384" => rustls::NamedGroup::secp384r1,
            "X25519" => rustls::NamedGroup::X25519,
            "X25519MLKEM768" => rustls::NamedGroup::X25519MLKEM768,
            "CurveP521" | "P521" => {
                return Err(WebConfigError::invalid(
                    "tls_server_config.curve_preferences",
                    "CurveP521 is not supported by rustls (use X25519, CurveP256 or CurveP384)",
                ))
            }
            _ => {
                return Err(WebConfigError::invalid(
                    "tls_server_config.curve_preferences",
                    "must name X25519, CurveP256, CurveP384 or X25519MLKEM768",
                ))
            }
        };
        if let Some(g) = provider.kx_groups.iter().find(|g| g.name() == group) {
            out.push(*g);
        }
    }
    if out.is_empty() {
        return Err(WebConfigError::invalid(
            "tls_server_config.curve_preferences",
            "none of these curves is available",
        ));
    }
    Ok(out)
}

/// `RequestClientCert` / `RequireAnyClientCert`: takes any certificate, still checks that the
/// client holds its key (the handshake signature), and trusts nothing about it.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_and_refuse_what_rustls_lacks() {
        assert_eq!(versions(None, None).unwrap().len(), 2);
        assert_eq!(versions(Some("TLS13"), None).unwrap().len(), 1);
        assert_eq!(versions(None, Some("TLS12")).unwrap().len(), 1);
        assert!(versions(Some("TLS10"), None)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(versions(Some("TLS13"), Some("TLS12")).is_err());
    }

    #[test]
    fn cipher_suites_by_go_name() {
        let p = provider();
        let tls13 = p
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .count();
        let got = cipher_suites(
            &p,
            &[
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into(),
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            ],
        )
        .unwrap();
        assert_eq!(got.len(), tls13 + 2);
        let e = cipher_suites(&p, &["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("TLS_RSA_WITH_AES_128_CBC_SHA is not supported"),
            "{e}"
        );
    }

    #[test]
    fn curves_by_go_name() {
        let p = provider();
        let got = curves(&p, &["CurveP256".into(), "X25519".into()]).unwrap();
        assert_eq!(got[0].name(), rustls::NamedGroup::secp256r1);
        assert_eq!(got[1].name(), rustls::NamedGroup::X25519);
        assert!(curves(&p, &["CurveP521".into()]).is_err());
    }

    #[test]
    fn allowed_sans_kinds() {
        assert_eq!(
            allowed_san("10.0.0.1").unwrap(),
            AllowedSan::Ip("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            allowed_san("prom.example.org").unwrap(),
            AllowedSan::Dns("prom.example.org".into())
        );
        assert!(matches!(
            allowed_san("spiffe://cluster/ns/monitoring").unwrap(),
            AllowedSan::Uri(_)
        ));
        assert!(allowed_san("sre@example.org").is_err());
    }
}
