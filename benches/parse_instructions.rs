//! The envelope pass and the typed payload counted in instructions rather than timed (this
//! VM's speed drifts by tens of per cent between runs; an instruction count does not): the
//! program reads the `message.inbound/text` fixture N times, pretty-printed as shipped (1,255
//! bytes) or compact (652 bytes), in one of three ways: its envelope with
//! `Envelope::from_slice` (`walk`), its envelope with serde_json alone as before the walker
//! (`serde`), or its payload typed with `VobizEvent::from_payload` and its text read (`typed`,
//! a shortcut read without the model) or its messages (`model`, the whole model; the payload's
//! text, as the layer hands it over). `walk-empty` walks the same envelope with `{}` as its
//! payload: `walk` minus `walk-empty` is what checking the payload strictly costs, the least
//! any typing of untrusted bytes must spend. Run it under callgrind for two N; the difference
//! per iteration is the cost of one pass.
//!
//! ```sh
//! cargo bench --bench parse_instructions --no-run
//! B=$(ls -t target/release/deps/parse_instructions-* | grep -v '\.d$' | head -1)
//! for mode in serde walk walk-empty typed model; do for form in pretty compact; do for n in 1000 11000; do
//!   echo "$mode $form $n: $(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     $B $mode $form $n 2>&1 | grep -o 'Collected : [0-9]*')"
//! done; done; done    # (second - first) / 10 000 = instructions a pass
//! ```
//!
//! Run by `cargo bench` without arguments, it parses a few envelopes each way and exits.

use std::hint::black_box;

use vobiz_webhooks::envelope::__from_slice_with_serde_json;
use vobiz_webhooks::{Envelope, EventType, VobizEvent};

#[path = "common/mod.rs"]
mod common;

fn main() {
    let mut args = common::program_args();
    let mode = args.next().unwrap_or_else(|| "all".to_owned());
    let form = args.next().unwrap_or_else(|| "pretty".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let body = match form.as_str() {
        "compact" => common::compact(common::TEXT),
        _ => common::TEXT.to_owned(),
    };
    let body = body.as_bytes();
    let payload = payload_of(body);
    let emptied = std::str::from_utf8(body).expect("UTF-8").replacen(
        std::str::from_utf8(payload).expect("UTF-8"),
        "{}",
        1,
    );
    let mut ok = 0u64;
    for _ in 0..n {
        if mode == "serde" || mode == "all" {
            ok += u64::from(__from_slice_with_serde_json(black_box(body)).is_ok());
        }
        if mode == "walk" || mode == "all" {
            ok += u64::from(Envelope::from_slice(black_box(body)).is_ok());
        }
        if mode == "walk-empty" || mode == "all" {
            ok += u64::from(Envelope::from_slice(black_box(emptied.as_bytes())).is_ok());
        }
        if mode == "typed" || mode == "all" {
            let event = VobizEvent::from_payload(&EventType::MessageInbound, black_box(payload));
            ok += u64::from(event.as_inbound().and_then(|msg| msg.text()).is_some());
        }
        if mode == "model" || mode == "all" {
            let event = VobizEvent::from_payload(&EventType::MessageInbound, black_box(payload));
            ok += u64::from(event.as_inbound().map_or(0, |msg| msg.messages().count()) == 1);
        }
    }
    assert!(ok >= n, "the fixture parses");
}

/// The text of the body's `payload` value.
fn payload_of(body: &[u8]) -> &[u8] {
    let text = std::str::from_utf8(body).expect("UTF-8");
    let start = text.find("\"payload\"").expect("a payload") + "\"payload\":".len();
    let end = text.rfind('}').expect("an object");
    text[start..end].trim().as_bytes()
}
