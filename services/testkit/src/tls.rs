//! Certificates for tests of TLS links to the engines: a private CA and a
//! server certificate for `127.0.0.1` and `localhost`, minted in the test
//! with OpenSSL and written as PEM files that `redis-server`, Kafka and
//! Cassandra read. Nothing is shared between tests: each mints its own.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Name, X509NameRef, X509};
use std::path::{Path, PathBuf};

/// The PEM files of one private CA and the server certificate it signed.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA's certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate (for `127.0.0.1` and `localhost`).
    pub cert: PathBuf,
    /// The server's private key, unencrypted PKCS#8.
    pub key: PathBuf,
    /// The key followed by the certificate, in one file (Kafka's PEM
    /// keystore).
    pub key_and_cert: PathBuf,
}

impl TestCerts {
    /// Mints a CA and a server certificate into `dir` (created if missing).
    pub fn mint(dir: &Path) -> TestCerts {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let (ca, ca_key) = ca().unwrap_or_else(|e| panic!("minting a test CA: {e}"));
        let (cert, key) = server(&ca, &ca_key).unwrap_or_else(|e| panic!("minting a server certificate: {e}"));
        let pem = |what: Result<Vec<u8>, ErrorStack>| what.unwrap_or_else(|e| panic!("encoding PEM: {e}"));
        let (ca_pem, cert_pem, key_pem) = (
            pem(ca.to_pem()),
            pem(cert.to_pem()),
            pem(key.private_key_to_pem_pkcs8()),
        );
        let out = TestCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            key_and_cert: dir.join("server-keystore.pem"),
        };
        let write = |path: &Path, bytes: &[u8]| {
            std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()))
        };
        write(&out.ca, &ca_pem);
        write(&out.cert, &cert_pem);
        write(&out.key, &key_pem);
        write(&out.key_and_cert, &[key_pem.as_slice(), cert_pem.as_slice()].concat());
        out
    }
}

fn name(common: &str) -> Result<X509Name, ErrorStack> {
    let mut n = X509Name::builder()?;
    n.append_entry_by_text("O", "seqline tests")?;
    n.append_entry_by_text("CN", common)?;
    Ok(n.build())
}

fn rsa_key() -> Result<PKey<Private>, ErrorStack> {
    PKey::from_rsa(Rsa::generate(2048)?)
}

/// A builder with what both certificates share: a random serial, a day of
/// validity (from an hour ago, against clock skew between processes).
fn builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
) -> Result<openssl::x509::X509Builder, ErrorStack> {
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(key)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let from = i64::try_from(now.saturating_sub(3600)).unwrap_or(i64::MAX);
    b.set_not_before(Asn1Time::from_unix(from)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(1)?.as_ref())?;
    Ok(b)
}

fn ca() -> Result<(X509, PKey<Private>), ErrorStack> {
    let key = rsa_key()?;
    let subject = name("seqline test CA")?;
    let mut b = builder(&subject, &subject, &key)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

fn server(ca: &X509, ca_key: &PKey<Private>) -> Result<(X509, PKey<Private>), ErrorStack> {
    let key = rsa_key()?;
    let subject = name("localhost")?;
    let mut b = builder(&subject, ca.subject_name(), &key)?;
    b.append_extension(BasicConstraints::new().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(san)?;
    b.sign(ca_key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}
