//! OS randomness, without a crate: `/dev/urandom`, falling back to std's
//! randomly keyed hasher.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;

pub fn fill(buf: &mut [u8]) {
    if let Ok(mut file) = std::fs::File::open("/dev/urandom")
        && file.read_exact(buf).is_ok()
    {
        return;
    }
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_usize(i);
        let word = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

pub fn u64() -> u64 {
    let mut buf = [0; 8];
    fill(&mut buf);
    u64::from_le_bytes(buf)
}

/// `len` characters from an alphabet without look-alikes.
pub fn password(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut buf = vec![0; len];
    fill(&mut buf);
    buf.iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
