//! Decode and encode throughput of STOMP frames, in frames per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stomp::{Command, Decoder, Frame, Limits, Version, encode};

/// A MESSAGE frame as a broker delivers it: eight headers (with content-length) and a 200-byte UTF-8 body.
fn typical_message() -> Frame {
    let mut body = String::from(r#"{"room":"général","from":"zoë","text":"Grüße aus Köln! ☕ "#);
    while body.len() < 197 {
        body.push('·');
    }
    while body.len() < 198 {
        body.push(' ');
    }
    body.push_str("\"}");
    let body = body.into_bytes();
    Frame::new(Command::Message)
        .header("destination", "/topic/chat.room-42")
        .header("message-id", "T_sub-0@@session-3bX9kQ@@1042")
        .header("subscription", "sub-0")
        .header("ack", "client-individual")
        .header("content-type", "application/json;charset=utf-8")
        .header("timestamp", "1767225600000")
        .header("x-sender", "zoë")
        .header("content-length", body.len().to_string())
        .body(body)
}

fn large_message() -> Frame {
    Frame::new(Command::Message)
        .header("destination", "/queue/uploads")
        .header("message-id", "1043")
        .header("subscription", "sub-1")
        .header("content-type", "application/octet-stream")
        .body((0..64 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// Benchmarks decoding `bytes` and, given `frame`, encoding it.
fn bench_frame(c: &mut Criterion, name: &str, frame: Option<&Frame>, bytes: &[u8]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));

    group.bench_function("decode", |b| {
        let mut decoder = Decoder::new(Limits::default());
        b.iter(|| {
            decoder.push(black_box(bytes));
            black_box(decoder.next_frame().expect("valid frame").expect("complete frame"))
        });
    });
    if bytes.len() > 1024 {
        group.bench_function("decode in 1 KiB pieces", |b| {
            let mut decoder = Decoder::new(Limits::default());
            b.iter(|| {
                let mut frame = None;
                for piece in black_box(bytes).chunks(1024) {
                    decoder.push(piece);
                    frame = decoder.next_frame().expect("valid frame");
                }
                black_box(frame.expect("complete frame"))
            });
        });
    }
    if let Some(frame) = frame {
        group.bench_function("encode", |b| {
            let mut out = Vec::with_capacity(bytes.len());
            b.iter(|| {
                out.clear();
                encode(black_box(frame), Version::V1_2, &mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(frame, Version::V1_2, &mut bytes);
    bytes
}

fn frames(c: &mut Criterion) {
    let typical = typical_message();
    assert_eq!(typical.headers.len(), 8);
    assert_eq!(typical.body.len(), 200);
    bench_frame(c, "message 8 headers 200 B body", Some(&typical), &encoded(&typical));

    let large = large_message();
    bench_frame(c, "message 64 KiB body", Some(&large), &encoded(&large));

    // The same size of body delimited by its NUL alone, which the decoder has to search for.
    let unsized_large = Frame::new(Command::Send).header("destination", "/queue/uploads").body(vec![b'x'; 64 * 1024]);
    let mut bytes = b"SEND\ndestination:/queue/uploads\n\n".to_vec();
    bytes.extend_from_slice(&unsized_large.body);
    bytes.push(0);
    let mut decoder = Decoder::new(Limits::default());
    decoder.push(&bytes);
    assert_eq!(decoder.next_frame().ok().flatten().as_ref(), Some(&unsized_large));
    bench_frame(c, "send 64 KiB body without content-length", None, &bytes);
}

criterion_group!(benches, frames);
criterion_main!(benches);
