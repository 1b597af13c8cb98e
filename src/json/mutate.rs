//! Test support: random edits of JSON text, to hold the fast readers to serde_json's answers
//! on thousands of nearly-valid inputs.

/// splitmix64: a fixed seed, so a failure reproduces.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes and snippets that make JSON interesting to break.
const BYTES: &[u8] =
    b"{}[]:,\"\\ \n\t\r0123456789-+.eEnultrfasbu/\x00\x01\x1f\x7f\xc3\xa9\xe2\x82\xff\x80";
const SNIPPETS: &[&str] = &[
    r"\u00e9",
    r"\ud83d\ude00",
    r"\ud800",
    r"\udc00",
    r"\ud800\u0041",
    r"\x",
    r"\u12",
    r#""event_id":"d","#,
    r#""event_type":null,"#,
    r#""payload":null,"#,
    r#""payload":[1,2],"#,
    r#""\u0065vent_id":"e","#,
    r#""extra":{"a":[true,false,null,-0.5e+3]},"#,
    "null",
    "-",
    "01",
    "1.",
    "1e",
    ".5",
    "[[",
    "]]",
    "{\"k\":",
    ",,",
    "\u{2028}",
    "\u{a0}",
    // For payloads: known and unknown fields, and the numbers serde_json reads subtly.
    r#""type":"text","text":{"body":"x"},"#,
    r#""timestamp":1711360800,"#,
    r#""id":"\u0077amid","#,
    r#""unknown_field":{"a":[1,"b"]},"#,
    r#""errors":[{"code":131051,"title":"t"}],"#,
    "12345678901234567890",
    "9999999999999999999",
    "-0",
    "1e400",
    "0.30000000000000004",
];

pub(crate) fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    let at = rng.below(body.len() + 1);
    match rng.below(8) {
        0 if at < body.len() => body[at] = BYTES[rng.below(BYTES.len())],
        1 => body.insert(at, BYTES[rng.below(BYTES.len())]),
        2 if at < body.len() => {
            body.remove(at);
        }
        3 => {
            let end = (at + 1 + rng.below(8)).min(body.len());
            body.drain(at..end);
        }
        4 => {
            let from = rng.below(body.len());
            let end = (from + 1 + rng.below(16)).min(body.len());
            let span = body[from..end].to_vec();
            body.splice(at..at, span);
        }
        5 => body.truncate(at),
        6 if at < body.len() => body[at] = rng.next() as u8,
        _ => {
            let snippet = SNIPPETS[rng.below(SNIPPETS.len())].as_bytes();
            body.splice(at..at, snippet.iter().copied());
        }
    }
}

/// `json` without whitespace between its tokens.
pub(crate) fn compact(json: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c.is_ascii_whitespace() {
            continue;
        } else {
            in_string = c == '"';
        }
        out.push(c);
    }
    out
}
