//! Every key `relay.toml` may set, by table, with the doc string `init` writes above it.

/// A table of the file (the root is the one without a name).
pub(super) struct Section {
    /// `[name]`, or "" for the keys before the first table.
    pub(super) name: &'static str,
    /// A comment under the table's header, if the table needs one.
    pub(super) doc: &'static str,
    /// The keys, in the order they are written.
    pub(super) keys: &'static [Key],
}

/// One key of the file.
pub(super) struct Key {
    /// The key inside its table.
    pub(super) name: &'static str,
    /// What it does, written above it.
    pub(super) doc: &'static str,
    /// For an optional key that is unset: a value to show, commented out.
    pub(super) example: Option<&'static str>,
}

const fn key(name: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        doc,
        example: None,
    }
}

/// Every key `relay.toml` may set, by table.
pub(super) const SECTIONS: &[Section] = &[
    Section {
        name: "",
        doc: "",
        keys: &[
            key("name", "A human name for this relay, shown in logs."),
            key(
                "listen",
                "Where to listen, as libp2p multiaddrs. TCP carries Noise + Yamux; \
                 \"udp/.../quic-v1\" is QUIC. Port 0 picks a free port. \
                 `tidings-relay run --listen ADDR` overrides this list.",
            ),
            key(
                "announce",
                "Addresses others should dial (put in home records and contact cards), for \
                 relays behind NAT or a proxy; empty: the addresses it listens on.",
            ),
            key(
                "bootstrap",
                "Relays to join the network through, each ending in /p2p/<peer id> (as \
                 printed by `tidings-relay run`). Relays find each other and each other's \
                 users through a Kademlia DHT; a relay with no bootstrap starts a new network.",
            ),
            Key {
                name: "metrics_listen",
                doc: "Where to serve Prometheus metrics (/metrics) and a health check \
                      (/healthz), as host:port. Keep it on loopback or a private network. \
                      Comment it out to serve nothing.",
                example: Some("\"127.0.0.1:9717\""),
            },
            key(
                "store_cache_mib",
                "Memory for the database's page cache (relay.redb), in MiB: most of the relay's \
                 memory under load once it has run a while. More helps a relay whose users \
                 keep much mail waiting.",
            ),
        ],
    },
    Section {
        name: "registration",
        doc: "",
        keys: &[
            key(
                "policy",
                "Who may register: \"open\" (anyone), \"invite\" (an invite code from \
                 `tidings-relay invite create`), or \"closed\" (nobody new).",
            ),
            key(
                "per_source_per_hour",
                "New accounts one source (an IPv4 address, or an IPv6 /64) may register per \
                 hour, sustained; beyond it `rate_limited`.",
            ),
            key("per_source_burst", "... and at once."),
            key(
                "limit_loopback",
                "Whether registrations from loopback count against those limits too. A relay \
                 behind a local proxy (browsers over /ws through a TLS proxy) sees every \
                 client as loopback: keep it off and let the proxy limit, or turn it on to \
                 treat them all as one source.",
            ),
            key(
                "max_accounts",
                "Most accounts this relay keeps under open registration; 0: no cap. Beyond it \
                 new registrations get `registration_closed`.",
            ),
        ],
    },
    Section {
        name: "limits",
        doc: "Rate limits (token buckets): a sender over its limit gets `rate_limited` for the \
              envelopes beyond it (never a silent drop); clients keep those messages and \
              retry them later, other relays keep them in their outbox. What passes keeps \
              the sender's order.",
        keys: &[
            key("max_sessions", "Most device sessions served at once."),
            key(
                "mailbox_max_envelopes",
                "Most undelivered envelopes kept for one user; senders get `quota_exceeded` \
                 beyond it.",
            ),
            key(
                "mailbox_max_bytes",
                "Most bytes of undelivered envelopes kept for one user (a group message \
                 counts its full size for every member it waits for).",
            ),
            key(
                "outbox_max_envelopes",
                "Most envelopes waiting to be forwarded to other relays.",
            ),
            key(
                "outbox_max_per_user",
                "Most of those one user's messages may hold: one entry per recipient on \
                 another relay (a group message takes one per member elsewhere), so members \
                 nobody can reach fill their sender's share, not everyone's. Beyond it: \
                 `rate_limited` until other relays take some.",
            ),
            key(
                "relay_mailbox_max_envelopes",
                "Most undelivered envelopes one other relay's forwards may hold in the \
                 mailboxes here, all users together; beyond it that relay gets \
                 `rate_limited` and keeps them in its outbox until users here take some.",
            ),
            key(
                "min_free_disk_bytes",
                "Below this many free bytes on the data dir's filesystem the relay refuses \
                 what would grow its store (sends, forwards, registrations, key uploads) with \
                 `storage_full`, which senders retry, and keeps serving reads and acks; \
                 /healthz says so.",
            ),
            key(
                "dedupe_window_hours",
                "How long envelope ids are remembered so retries are not stored twice, in \
                 hours.",
            ),
            key(
                "user_envelopes_per_sec",
                "Envelopes one user of this relay may send per second, sustained (a group \
                 message counts once: this relay fans it out).",
            ),
            key(
                "user_envelopes_burst",
                "... and at once, e.g. after being offline with messages queued.",
            ),
            key(
                "relay_envelopes_per_sec",
                "Envelopes another relay may hand over per second, counted once per \
                 recipient here.",
            ),
            key(
                "relay_envelopes_burst",
                "... and at once; at least 1024 (the largest group).",
            ),
            key(
                "max_devices_per_account",
                "Most devices one account's signed device list may name (at least 1, the \
                 protocol caps it at 32); a longer list is refused with `quota_exceeded`.",
            ),
        ],
    },
    Section {
        name: "federation",
        doc: "",
        keys: &[
            key(
                "undeliverable_after_secs",
                "How long an envelope for a user on another relay is retried before its sender \
                 is told it could not be delivered, in seconds.",
            ),
            key(
                "forward_retry_min_ms",
                "The first pause before forwarding to a relay that failed again (doubling \
                 after each failure). Envelopes wait in the outbox meanwhile; a relay that \
                 connects again is tried at once.",
            ),
            key(
                "forward_retry_max_ms",
                "The longest pause between attempts to forward to a relay.",
            ),
        ],
    },
    Section {
        name: "presence",
        doc: "",
        keys: &[
            key(
                "heartbeat_timeout_secs",
                "A connected device that sends nothing, not even its heartbeat (clients send \
                 one every third of this), for this long is taken as gone and its user shown \
                 offline, in seconds.",
            ),
            key(
                "watch_ttl_secs",
                "How long another relay's watch on a user's presence lasts unless renewed \
                 (relays renew at a third of it, so a restarted relay is watched again within \
                 that), in seconds.",
            ),
        ],
    },
    Section {
        name: "network",
        doc: "Limits that keep one peer (a device, another relay, or a stranger) from taking \
              what the others need. Beyond them new connections or streams are refused and \
              counted in /metrics.",
        keys: &[
            key(
                "max_connections",
                "Most established connections, all peers together.",
            ),
            key(
                "max_connections_per_peer",
                "Most established connections with one peer.",
            ),
            key(
                "max_pending_connections",
                "Most incoming connections still in their handshake.",
            ),
            key(
                "federation_streams",
                "Most streams from other relays served at once, all together. One peer may \
                 hold at most federation_streams_per_peer of them, and once three quarters \
                 are taken only peers holding none get one, so a relay that needs its first \
                 stream still finds room.",
            ),
            key(
                "federation_streams_per_peer",
                "Most streams from one other relay served at once (a relay uses one).",
            ),
            key(
                "client_streams_per_device",
                "Most client streams of one device served at once.",
            ),
            key(
                "stream_idle_secs",
                "A stream from another relay, or from a device that has not registered, that \
                 sends no complete frame for this long is closed (the other side opens a new \
                 one when it needs it), in seconds.",
            ),
            key(
                "frame_timeout_secs",
                "A frame whose first byte has arrived must arrive whole within this many \
                 seconds, or its stream is closed.",
            ),
            key(
                "dht_store_kib",
                "KiB of DHT records (home records of other relays' users) this relay holds \
                 for the network. A peer may store at most dht_records_per_peer of them; \
                 records that do not come from the relay they name as home only fill half \
                 of it.",
            ),
            key(
                "dht_records_per_peer",
                "DHT records one peer may have stored here.",
            ),
            key(
                "accept_queue",
                "New streams of one protocol waiting to be taken (a burst of devices \
                 connecting at once waits here). Beyond it a new stream is reset at once, so \
                 the device retries, and counted in tidings_streams_refused_total \
                 (reason=\"backlog\"). At most 65536.",
            ),
            key(
                "idle_connection_secs",
                "A connection with no open stream is closed after this many seconds (a \
                 connected device keeps its session stream open). Links to other relays \
                 stay open while idle, up to 1024 of them, so forwards and DHT requests \
                 never wait for a new handshake.",
            ),
        ],
    },
    Section {
        name: "claims",
        doc: "",
        keys: &[
            key(
                "one_time_keys_per_user_per_hour",
                "One-time keys of a user handed out per hour (and at most this many at \
                 once). Beyond it a claim gets the user's fallback key instead, so nobody can \
                 drain the one-time keys (the session still opens; only its first message \
                 lacks one-time forward secrecy). 0: always the fallback key.",
            ),
            key(
                "relay_claims_per_sec",
                "Key claims another relay may make per second (one per user asked for), \
                 sustained; beyond it they are answered `rate_limited` and its users retry.",
            ),
            key("relay_claims_burst", "... and at once."),
        ],
    },
    Section {
        name: "blobs",
        doc: "Media: encrypted files devices upload (the relay sees ciphertext and sizes only).",
        keys: &[
            key(
                "max_blob_bytes",
                "Largest blob a device may upload, in bytes; larger ones get `blob_too_large`.",
            ),
            key(
                "user_quota_bytes",
                "Media bytes one account may hold: whole blobs it uploaded first plus its \
                 unfinished uploads (their declared size); beyond it `quota_exceeded`, \
                 answered before any byte is stored.",
            ),
            key(
                "retention_days",
                "How long a blob no stored envelope names any more is kept, then deleted.",
            ),
            key(
                "upload_grace_hours",
                "How long a finished upload counts as a reference by itself (the sender's \
                 time to send the message naming it).",
            ),
            key(
                "partial_expiry_hours",
                "How long an unfinished upload is kept for resuming before it is deleted.",
            ),
            key(
                "gc_interval_secs",
                "How often blobs past their retention and expired uploads are deleted.",
            ),
            key(
                "max_transfers",
                "Blob uploads and downloads served at once, in all.",
            ),
            key(
                "max_transfers_per_device",
                "Blob uploads and downloads one device may have served at once.",
            ),
            key(
                "federation_bytes_per_sec",
                "Blob bytes per second served to one other relay fetching blobs from here \
                 (for its users' downloads).",
            ),
            key(
                "fetched_quota_bytes",
                "Bytes of other relays' blobs kept here for local downloads, all together; \
                 beyond it a download needing a fetch gets `quota_exceeded` until older \
                 copies expire.",
            ),
        ],
    },
    Section {
        name: "push",
        doc: "Web Push: waking devices that are not connected. A push carries only \"new \
              messages, N\", encrypted to the device; the push service sees its endpoint, \
              the time and the size.",
        keys: &[
            key(
                "enabled",
                "Whether devices may register a push subscription and get pushes.",
            ),
            key(
                "interval_secs",
                "At most one push per device per this many seconds; messages meanwhile \
                 are counted into the next.",
            ),
            key(
                "ttl_secs",
                "How long the push service keeps an undelivered push (the `TTL` header).",
            ),
            key(
                "urgency",
                "The `Urgency` header: \"very-low\", \"low\", \"normal\" or \"high\".",
            ),
            key(
                "contact",
                "Who runs this relay, for push services (the VAPID `sub`): set your own \
                 mailto: or https: URL.",
            ),
            key(
                "timeout_secs",
                "Longest one POST to a push service may take.",
            ),
            key(
                "max_in_flight",
                "Most POSTs to push services under way at once.",
            ),
            key(
                "max_attempts",
                "Most tries of one push (retried on 429, 5xx, timeouts and connection \
                 errors, backing off from 1 s doubling to 5 min; `Retry-After` honoured up \
                 to 1 h).",
            ),
            key(
                "allow_private_endpoints",
                "Allow http:// endpoints and ones on loopback or private addresses (tests, \
                 a push server on your LAN). Off, they are refused (an SSRF guard).",
            ),
        ],
    },
    Section {
        name: "status",
        doc: "Status updates: stored at most 24 hours; the relay sees who posted, the \
              audience's user ids, the expiry and the size, never the content.",
        keys: &[
            key(
                "sweep_interval_secs",
                "How often statuses past their expiry are deleted, delivered or not.",
            ),
            key(
                "forward_retry_min_ms",
                "The first pause before handing a status to another relay again \
                 (doubling after each failure). Statuses wait in status.redb until \
                 the viewers' relays take them or they expire.",
            ),
            key(
                "forward_retry_max_ms",
                "The longest pause between attempts to hand a status to another relay.",
            ),
        ],
    },
    Section {
        name: "websocket",
        doc: "WebSocket listeners (`/tcp/N/ws` in `listen`) carry the same Noise + Yamux as \
              TCP: browsers connect this way. The usual setup is a TLS reverse proxy in front \
              of a /ws listener; for `/tcp/N/tls/ws` the relay terminates TLS itself.",
        keys: &[
            key(
                "tls_certificate",
                "PEM certificate chain for /tls/ws listeners (a relative path is inside the \
                 data dir); empty: none (a /tls/ws listen address is then refused).",
            ),
            key("tls_key", "PEM private key of that certificate."),
        ],
    },
    Section {
        name: "web",
        doc: "Serving the browser page (static files) over HTTP, with a strict \
              Content-Security-Policy and /tidings.json naming this relay's addresses.",
        keys: &[
            key(
                "listen",
                "host:port to serve the page on; empty: not served. Put a TLS proxy in \
                 front for anything but loopback.",
            ),
            key(
                "dir",
                "Directory of the built page (`web/build.sh` output; a relative path is \
                 inside the data dir).",
            ),
        ],
    },
];
