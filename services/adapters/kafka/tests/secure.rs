//! A managed cluster's links: a private Apache Kafka broker of this test
//! with a SASL_SSL listener (a certificate minted by the test; users for
//! PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512). Records go through that link
//! and come back through a consumer group with each mechanism; every wrong
//! setting is refused with an error that names it (and never prints the
//! password), and a refused log creates no topic.

#![allow(clippy::unwrap_used)]

mod common;

use common::test_options;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use seqline_core::ports::{Log, Polled};
use seqline_core::records::Topic;
use seqline_core::Error;
use seqline_kafka::{KafkaLog, KafkaOptions, Sasl, SaslMechanism, Security};
use seqline_testkit::fixtures::{gateway, key_and_n, keyed_record};
use seqline_testkit::kafka::KafkaServer;
use seqline_testkit::tls::TestCerts;
use std::time::{Duration, Instant};

const USER: &str = "app";
const PASSWORD: &str = "app-secret";

fn secure_options(broker: &KafkaServer, certs: &TestCerts, mechanism: SaslMechanism, password: &str) -> KafkaOptions {
    KafkaOptions {
        security: Security {
            tls: true,
            ca: Some(certs.ca.clone()),
            sasl: Some(Sasl {
                mechanism,
                username: USER.into(),
                password: password.into(),
            }),
        },
        message_timeout: Duration::from_secs(5),
        ..test_options(&broker.secure_bootstrap().unwrap())
    }
}

async fn refused(options: KafkaOptions) -> Error {
    match KafkaLog::connect(options).await {
        Ok(_) => panic!("the log connected with a wrong setting"),
        Err(e) => {
            eprintln!("refused: {e}");
            e
        }
    }
}

/// Appends three records and reads them back through a fresh group.
async fn round_trip(log: &KafkaLog) {
    let gw = gateway("g");
    let topic = Topic::Gateway(gw.clone());
    let records = (0..3).map(|n| keyed_record("k", n, &gw)).collect();
    log.append(&topic, records).await.unwrap();
    let mut consumer = log.subscribe("secure-readers", &topic).await.unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 3 {
        assert!(Instant::now() < deadline, "read back only {seen:?} over SASL_SSL");
        if let Polled::Records { records, .. } = consumer.poll(100).await.unwrap() {
            seen.extend(records.into_iter().filter_map(|c| key_and_n(&c.record.unwrap())));
        }
    }
    assert_eq!(seen.iter().map(|(_, n)| *n).collect::<Vec<_>>(), vec![0, 1, 2]);
}

/// Topics on the broker, listed over its plain listener.
fn topics(broker: &KafkaServer) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    metadata.topics().iter().map(|t| t.name().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_over_tls_works_with_every_mechanism_and_wrong_settings_are_refused() {
    let dir = std::env::temp_dir().join(format!("seqline-kafka-tls-{}", uuid::Uuid::new_v4().simple()));
    let certs = TestCerts::mint(&dir);
    let broker = {
        let certs = certs.clone();
        tokio::task::spawn_blocking(move || KafkaServer::start_secure(&certs, &[(USER, PASSWORD)]))
            .await
            .unwrap()
    };

    for mechanism in [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ] {
        let log = KafkaLog::connect(secure_options(&broker, &certs, mechanism, PASSWORD))
            .await
            .unwrap_or_else(|e| panic!("{mechanism:?}: {e}"));
        round_trip(&log).await;
    }

    let mut refusals = Vec::new();
    // A wrong password, with each mechanism: a configuration error, not an
    // outage to wait out, and the password it tried is not printed.
    for mechanism in [SaslMechanism::Plain, SaslMechanism::ScramSha512] {
        let mut o = secure_options(&broker, &certs, mechanism, "not-the-password");
        o.topic_prefix = "refused.".into();
        let e = refused(o).await;
        assert!(matches!(e, Error::Config(_)), "{mechanism:?}: {e:?}");
        assert!(e.to_string().contains("uthentication"), "{e}");
        assert!(!e.to_string().contains("not-the-password"), "{e}");
        refusals.push(e);
    }
    // A certificate from a CA the client does not trust.
    let mut o = secure_options(&broker, &certs, SaslMechanism::ScramSha256, PASSWORD);
    o.security.ca = None;
    o.topic_prefix = "refused.".into();
    let e = refused(o).await;
    assert!(e.to_string().contains("certificate verify failed"), "{e}");
    // A CA file that is not there is named before anything connects.
    let mut o = secure_options(&broker, &certs, SaslMechanism::ScramSha256, PASSWORD);
    o.security.ca = Some(dir.join("missing-ca.pem"));
    let e = refused(o).await;
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("missing-ca.pem"),
        "{e:?}"
    );
    // Plain text to the SASL_SSL listener.
    let mut o = test_options(&broker.secure_bootstrap().unwrap());
    o.topic_prefix = "refused.".into();
    o.message_timeout = Duration::from_secs(5);
    refused(o).await;

    let names = topics(&broker);
    assert!(
        !names.iter().any(|t| t.starts_with("refused.")),
        "a refused log created topics: {names:?}"
    );
    drop(broker);
    std::fs::remove_dir_all(&dir).ok();
}
