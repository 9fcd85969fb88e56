//! The scripted origin of the tests' support, through the layer.

mod support;

use http::StatusCode;
use support::{Origin, get, layer, respond, send};

#[tokio::test(start_paused = true)]
async fn a_stored_answer_is_served_without_a_second_origin_call() {
    let origin =
        Origin::new(|_, _| respond(StatusCode::OK, &[("cache-control", "max-age=60")], "body"));
    let service = origin.behind(&layer());
    let first = send(&service, get("http://a.test/x", &[])).await;
    let second = send(&service, get("http://a.test/x", &[])).await;
    assert_eq!((first.text(), second.text()), ("body", "body"));
    assert_eq!(origin.calls(), 1);
    assert_eq!(origin.body_bytes(), 4);
    assert!(second.header("cache-status").unwrap().contains("hit"));
}
