//! The AWS SDK is built without its default HTTPS client (which would link aws-lc), so every
//! client must get the one `sdk_loader` installs. The emulator speaks plain HTTP and cannot
//! tell; this test can: an SDK call to an `https://` endpoint must open a TLS handshake, not
//! fail for want of an HTTP client before it connects.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};

use aws_config::Region;
use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::config::Credentials;

/// A TLS record carrying a handshake message (RFC 8446, 5.1), in a TLS 1.x record layer.
const HANDSHAKE: u8 = 0x16;

#[tokio::test]
async fn an_sdk_call_opens_a_tls_handshake_through_our_client() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let addr = listener.local_addr().expect("the port");
    // The peer reads the first bytes of the first connection, then hangs up.
    let peer = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        let mut first = [0u8; 3];
        socket.read_exact(&mut first).expect("read the first bytes");
        first
    });

    let config = dispatcher_aws::sdk_loader()
        .endpoint_url(format!("https://{addr}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("id", "secret", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let answer = aws_sdk_dynamodb::Client::new(&config)
        .list_tables()
        .send()
        .await;
    assert!(answer.is_err(), "the peer speaks no TLS: {answer:?}");

    // Had the SDK never connected, the peer would still wait: this connection then is the
    // one it reads, and three zero bytes fail the test rather than hang it. (Had it
    // connected, this one waits unread in the backlog.)
    if !peer.is_finished() {
        let _ = TcpStream::connect(addr).and_then(|mut s| s.write_all(&[0; 3]));
    }
    let first = peer.join().expect("the peer");
    assert_eq!(
        first[..2],
        [HANDSHAKE, 0x03],
        "the SDK's first bytes are a TLS handshake record; got {first:?} (error: {:?})",
        answer.err()
    );
}
