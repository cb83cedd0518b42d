//! Links between relays stay open while idle; a stranger's idle connection does not.

use std::time::Duration;

use tidings_relay::RelayConfig;

use crate::common::{StreamOpener, metric, start_relays_tweaked};

fn idle_after_one_second(config: &mut RelayConfig) {
    config.network.idle_connection_secs = 1;
}

/// `tidings_connections` and `tidings_warm_relay_links` of `relay`'s /metrics.
fn links(relay: &crate::common::TestRelay) -> (f64, f64) {
    let text = relay.relay.metrics().render();
    (
        metric(&text, "tidings_connections", &[]).unwrap_or(0.0),
        metric(&text, "tidings_warm_relay_links", &[]).unwrap_or(0.0),
    )
}

#[tokio::test]
async fn a_link_between_relays_outlives_the_idle_timeout_and_a_strangers_does_not() {
    let relays = start_relays_tweaked(2, idle_after_one_second).await;
    let address = relays[0].relay.dial_addrs()[0].clone();
    // A peer that never opens a stream: no session keeps its connection up.
    let stranger = StreamOpener::dial(libp2p::identity::Keypair::generate_ed25519(), &address);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(links(&relays[0]).0, 2.0, "the other relay and the stranger");

    // Four idle timeouts later only the relay link is left, on both sides.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for relay in &relays {
        assert_eq!(links(relay), (1.0, 1.0), "connections, warm links");
    }
    stranger.close();
}
