//! Reading JSON text faster than serde_json where the crate reads a lot of it, with the same
//! answers: the envelope walker ([`crate::envelope`]) and the typed events' reader
//! ([`crate::event`]) are both made of [`scan`]'s strict primitives.
//!
//! Neither replaces serde_json: each refuses what it is not sure of, and its caller then asks
//! serde_json, whose answer (and error) stands. Their tests hold them to serde_json's answers.

#[cfg(test)]
pub(crate) mod mutate;
pub(crate) mod reader;
pub(crate) mod scan;
