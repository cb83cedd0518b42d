//! Whatever a local process writes to the admin socket, the relay answers with a typed
//! error (or closes) and goes on serving.

use tidings_relay::admin::{
    ADMIN_SOCKET, AdminError, Reply, Request,
    protocol::{
        ADMIN_VERSION, MAX_ANSWER_BYTES, MAX_REQUEST_BYTES, RequestFrame, decode_answer,
        read_frame, write_frame,
    },
};
use tokio::{io::AsyncWriteExt, net::UnixStream};

use crate::process::RelayProcess;

/// Writes `bytes` as one length-prefixed frame and reads the answer.
async fn answer_to(path: &std::path::Path, bytes: &[u8]) -> Result<Reply, AdminError> {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream
        .write_all(&(bytes.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let body = read_frame(&mut stream, MAX_ANSWER_BYTES)
        .await
        .unwrap()
        .expect("an answer");
    let answer = decode_answer(&body).unwrap();
    if matches!(
        answer,
        Err(AdminError::Malformed(_) | AdminError::TooLarge { .. } | AdminError::Version { .. })
    ) {
        // A request that does not decode ends the connection.
        assert!(
            read_frame(&mut stream, MAX_ANSWER_BYTES)
                .await
                .unwrap()
                .is_none()
        );
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_admin_socket_gets_a_typed_error_not_a_panic() {
    let relay = RelayProcess::start(|_| {}).await;
    let path = relay.path().join(ADMIN_SOCKET);

    let answer = answer_to(&path, b"\xff\xfe this is not CBOR").await;
    assert!(
        matches!(answer, Err(AdminError::Malformed(_))),
        "{answer:?}"
    );
    let answer = answer_to(&path, &[0x9f; 512]).await;
    assert!(
        matches!(answer, Err(AdminError::Malformed(_))),
        "{answer:?}"
    );
    let answer = answer_to(&path, &[]).await;
    assert!(
        matches!(answer, Err(AdminError::Malformed(_))),
        "{answer:?}"
    );

    // A request kind this relay does not know.
    #[derive(serde::Serialize)]
    enum Newer {
        #[serde(rename = "launch")]
        Launch,
    }
    #[derive(serde::Serialize)]
    struct Frame {
        v: &'static str,
        q: Newer,
    }
    let newer = tidings_protocol::codec::encode(&Frame {
        v: ADMIN_VERSION,
        q: Newer::Launch,
    });
    let answer = answer_to(&path, &newer).await;
    assert!(
        matches!(answer, Err(AdminError::Malformed(_))),
        "{answer:?}"
    );

    let other_version = tidings_protocol::codec::encode(&RequestFrame {
        version: "admin/99".into(),
        request: Request::Status,
    });
    let answer = answer_to(&path, &other_version).await;
    assert!(
        matches!(&answer, Err(AdminError::Version { relay, client })
            if relay == ADMIN_VERSION && client == "admin/99"),
        "{answer:?}"
    );

    // A length past the bound is refused before anything is read.
    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let body = read_frame(&mut stream, MAX_ANSWER_BYTES)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        decode_answer(&body).unwrap(),
        Err(AdminError::TooLarge {
            len: u64::from(u32::MAX),
            max: MAX_REQUEST_BYTES as u64,
        })
    );

    // Half a frame, then gone.
    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream.write_all(&[0, 0, 1, 0, 1, 2, 3]).await.unwrap();
    drop(stream);

    // The relay still serves, several requests on one connection too.
    let mut stream = UnixStream::connect(&path).await.unwrap();
    for _ in 0..3 {
        write_frame(&mut stream, &RequestFrame::new(Request::Status))
            .await
            .unwrap();
        let body = read_frame(&mut stream, MAX_ANSWER_BYTES)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            decode_answer(&body).unwrap(),
            Ok(Reply::Status(_))
        ));
    }
    let unknown_user = "5".repeat(44);
    let answer = answer_to(
        &path,
        &tidings_protocol::codec::encode(&RequestFrame::new(Request::ShowUser(unknown_user))),
    )
    .await;
    assert!(
        matches!(
            answer,
            Err(AdminError::UnknownUser(_) | AdminError::BadUserId(_))
        ),
        "{answer:?}"
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_left_by_a_crash_is_replaced_on_the_next_start() {
    let relay = RelayProcess::start(|_| {}).await;
    let path = relay.path().join(ADMIN_SOCKET);
    let dir = relay.crash().await;
    assert!(path.exists(), "a killed relay cannot remove its socket");
    let (ok, _, err) = crate::process::cli(dir.path(), &["status"]).await;
    assert!(!ok && err.contains("no relay is running on"), "{err}");
    let relay = RelayProcess::run(dir).await;
    let status = relay.json(&["status", "--json"]).await;
    assert_eq!(status["users"], 0);
    relay.stop().await;
}
