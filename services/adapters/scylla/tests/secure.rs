#![allow(clippy::unwrap_used)]
//! A managed cluster's links: a private Cassandra node of this test that
//! asks for a password (`PasswordAuthenticator`) and takes only TLS
//! connections, with a certificate minted by the test. The store works over
//! that link with the right user, password and CA; every wrong setting is
//! refused with an error that names it (and never prints the password), and
//! a refused store creates nothing on the server.

mod common;

use scylla::client::session_builder::SessionBuilder;
use seqline_core::ids::ConvSeq;
use seqline_core::ports::Store;
use seqline_core::Error;
use seqline_scylla::{ScyllaOptions, ScyllaStore};
use seqline_testkit::cassandra::CassandraServer;
use seqline_testkit::fixtures::{conversation, create_batch, messages_batch, user};
use seqline_testkit::tls::TestCerts;
use std::time::Duration;

/// The node's built-in superuser.
const USER: &str = "cassandra";
const PASSWORD: &str = "cassandra";

fn secure_options(server: &CassandraServer, certs: &TestCerts, keyspace: &str) -> ScyllaOptions {
    let mut o = common::options(&server.addr(), keyspace);
    o.user = Some(USER.into());
    o.password = Some(PASSWORD.into());
    o.tls_ca = Some(certs.ca.clone());
    o.connect_timeout = Duration::from_secs(10);
    o
}

async fn refused(options: ScyllaOptions) -> Error {
    match ScyllaStore::connect(options).await {
        Ok(_) => panic!("the store connected with a wrong setting"),
        Err(e) => {
            eprintln!("refused: {e}");
            e
        }
    }
}

/// The keyspaces on the node, asked over a link with the right settings.
async fn keyspaces(server: &CassandraServer, certs: &TestCerts) -> Vec<String> {
    let mut tls = openssl::ssl::SslContext::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
    tls.set_ca_file(&certs.ca).unwrap();
    tls.set_verify(openssl::ssl::SslVerifyMode::PEER);
    let session = SessionBuilder::new()
        .known_node(server.addr())
        .user(USER, PASSWORD)
        .tls_context(Some(tls.build()))
        .build()
        .await
        .unwrap();
    let rows = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    rows.rows::<(String,)>().unwrap().map(|r| r.unwrap().0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_password_the_store_works_and_wrong_settings_are_refused() {
    let dir = std::env::temp_dir().join(format!("seqline-cql-tls-{}", uuid::Uuid::new_v4().simple()));
    let certs = TestCerts::mint(&dir);
    let server = {
        let certs = certs.clone();
        tokio::task::spawn_blocking(move || CassandraServer::start_secure(Some(&certs)))
            .await
            .unwrap()
    };

    // The node sets up its superuser just after it opens its port: the
    // first logins may be refused for a moment.
    let store = seqline_testkit::wait::until(Duration::from_secs(60), "a login over TLS", || {
        let options = secure_options(&server, &certs, "seqline_secure");
        async move { ScyllaStore::connect(options).await.ok() }
    })
    .await;
    let (conv, alice) = (conversation(), user("alice"));
    store
        .commit_conversation(create_batch(&conv, &alice, &[]))
        .await
        .unwrap();
    store
        .commit_conversation(messages_batch(&conv, 0, 3, &alice))
        .await
        .unwrap();
    let read = store.messages_after(&conv, ConvSeq(0), 10).await.unwrap();
    assert_eq!(read.len(), 3, "the messages committed over TLS read back");

    // Wrong password: a configuration error, not a retryable outage, and
    // the password it tried is not printed.
    let mut o = secure_options(&server, &certs, "seqline_refused");
    o.password = Some("not-the-password".into());
    let e = refused(o).await;
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");

    // No credentials at all.
    let mut o = secure_options(&server, &certs, "seqline_refused");
    o.user = None;
    o.password = None;
    let e = refused(o).await;
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    // A certificate from a CA the client does not trust.
    let mut o = secure_options(&server, &certs, "seqline_refused");
    o.tls_ca = None;
    o.tls = true;
    let e = refused(o).await;
    assert!(e.to_string().contains("certificate verify failed"), "{e}");

    // A CA file that is not there is named.
    let mut o = secure_options(&server, &certs, "seqline_refused");
    o.tls_ca = Some(dir.join("missing-ca.pem"));
    let e = refused(o).await;
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("missing-ca.pem"),
        "{e:?}"
    );

    // Plain text to a TLS-only node.
    let mut o = secure_options(&server, &certs, "seqline_refused");
    o.tls_ca = None;
    o.connect_timeout = Duration::from_secs(3);
    refused(o).await;

    let names = keyspaces(&server, &certs).await;
    assert!(names.iter().any(|k| k == "seqline_secure"), "{names:?}");
    assert!(
        !names.iter().any(|k| k == "seqline_refused"),
        "a refused store created its keyspace: {names:?}"
    );
    drop(store);
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}
