//! The built-in `hash` embedder: a deterministic, lexical "bag of features" vector. It is NOT a
//! semantic model: it knows nothing about meaning or synonyms ("car" and "automobile" share
//! nothing). Two texts score high when they share words, word pairs, or spelling fragments.
//!
//! Features, each hashed with FNV-1a (64 bit, stable across builds and platforms) into one of
//! [`DIMENSIONS`] slots with a sign taken from the hash (signed feature hashing, so collisions
//! tend to cancel rather than pile up):
//! - every lower-cased word (weight 1; a few very common English words weigh 0.25),
//! - every pair of neighbouring words (weight 0.5), so word order counts a little,
//! - the character 3-grams of each word padded as `<word>` (together weight 0.5 per word), so
//!   "deploy" and "deployment" are close and typos still overlap.
//!
//! The vector is L2-normalised, so the cosine similarity pgvector computes is a dot product. It
//! costs a few microseconds per message and needs no network, which makes it the default.

use futures_util::future::{LocalBoxFuture, ready};

use super::{DIMENSIONS, EmbedError, Embedder};

/// Words so common that sharing them says little.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "do", "for", "from", "has", "have",
    "i", "if", "in", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "so", "that",
    "the", "this", "to", "was", "we", "were", "what", "with", "you", "your",
];

const WORD_WEIGHT: f32 = 1.0;
const STOP_WORD_WEIGHT: f32 = 0.25;
const PAIR_WEIGHT: f32 = 0.5;
/// The L2 mass of one word's 3-grams together.
const TRIGRAMS_WEIGHT: f32 = 0.5;

/// Feature kinds, hashed in first so that the word "ab" and the 3-gram "ab" differ.
const KIND_WORD: u8 = 1;
const KIND_PAIR: u8 = 2;
const KIND_TRIGRAM: u8 = 3;

/// The `hash` provider. Stateless; every instance gives the same vectors.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashEmbedder;

impl Embedder for HashEmbedder {
    fn name(&self) -> &'static str {
        "hash"
    }

    fn batch_size(&self) -> usize {
        1000
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> LocalBoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(ready(Ok(texts.iter().map(|t| embed_one(t)).collect())))
    }
}

/// The embedding of one text.
pub fn embed_one(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; DIMENSIONS];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut padded = String::new();
    let mut bounds = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let weight = if STOP_WORDS.contains(word) {
            STOP_WORD_WEIGHT
        } else {
            WORD_WEIGHT
        };
        add(&mut vector, hash(KIND_WORD, &[word.as_bytes()]), weight);
        if let Some(next) = words.get(i + 1) {
            let pair = hash(KIND_PAIR, &[word.as_bytes(), b" ", next.as_bytes()]);
            add(&mut vector, pair, PAIR_WEIGHT);
        }
        add_trigrams(&mut vector, word, &mut padded, &mut bounds);
    }
    normalise(&mut vector);
    vector
}

fn add_trigrams(vector: &mut [f32], word: &str, padded: &mut String, bounds: &mut Vec<usize>) {
    padded.clear();
    padded.push('<');
    padded.push_str(word);
    padded.push('>');
    bounds.clear();
    bounds.extend(padded.char_indices().map(|(i, _)| i));
    bounds.push(padded.len());
    // `bounds` has one entry per char plus the end: n chars give n - 2 trigrams.
    let count = bounds.len().saturating_sub(3);
    if count == 0 {
        return;
    }
    let weight = TRIGRAMS_WEIGHT / (count as f32).sqrt();
    for start in 0..count {
        let gram = &padded.as_bytes()[bounds[start]..bounds[start + 3]];
        add(vector, hash(KIND_TRIGRAM, &[gram]), weight);
    }
}

/// Adds `weight` with the hash's sign to the hash's slot.
fn add(vector: &mut [f32], h: u64, weight: f32) {
    let slot = (h % DIMENSIONS as u64) as usize;
    let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
    vector[slot] += sign * weight;
}

/// FNV-1a over the kind byte and the parts, finished with a multiply-xorshift so that the low
/// bits used for the slot depend on every input byte.
fn hash(kind: u8, parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = (OFFSET ^ u64::from(kind)).wrapping_mul(PRIME);
    for part in parts {
        for &byte in *part {
            h = (h ^ u64::from(byte)).wrapping_mul(PRIME);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Scales to unit length. A text without a single letter or digit gets a fixed unit vector, so
/// that cosine distances stay defined.
fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    } else {
        vector[0] = 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        for text in ["hello world", "", "!!!", "ünïcödé wörds ok", "a"] {
            let v = embed_one(text);
            assert_eq!(v.len(), DIMENSIONS);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{text}: {norm}");
            assert_eq!(v, embed_one(text));
        }
    }

    #[test]
    fn hashes_are_stable_across_builds() {
        // FNV-1a is fixed by its definition; a change here would silently invalidate every
        // stored embedding, so it is pinned.
        assert_eq!(
            hash(KIND_WORD, &[b"deploy"]),
            hash(KIND_WORD, &[b"dep", b"loy"])
        );
        assert_eq!(hash(KIND_WORD, &[b"deploy"]), 0xeaaa_d0d6_6248_db30);
    }

    #[test]
    fn shared_words_score_higher_than_unrelated_text() {
        let query = embed_one("database migration failed");
        let related = embed_one("the Database migration failed again last night");
        let partial = embed_one("my migration is slow");
        let unrelated = embed_one("lunch at noon, anyone?");
        let (r, p, u) = (
            cosine(&query, &related),
            cosine(&query, &partial),
            cosine(&query, &unrelated),
        );
        assert!(r > p && p > u, "related {r}, partial {p}, unrelated {u}");
        assert!(u.abs() < 0.2, "unrelated {u}");
    }

    #[test]
    fn spelling_fragments_bring_word_forms_together() {
        let a = embed_one("deployment");
        let b = embed_one("deploying");
        let c = embed_one("breakfast");
        assert!(cosine(&a, &b) > cosine(&a, &c) + 0.1);
    }

    #[test]
    fn case_and_punctuation_do_not_matter() {
        assert_eq!(embed_one("Hello, World!"), embed_one("hello world"));
    }
}
