//! The bytes the load generator sends: a per-connection stream in which every
//! 8-byte word encodes its own position, so that a byte that is lost,
//! repeated, reordered or delivered to the wrong connection is caught, at a
//! cost of one multiply per 8 bytes to generate or check.

/// The word at `index` of connection `stream`'s byte stream.
#[inline]
fn word(stream: u64, index: u64) -> u64 {
    (index ^ (stream << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555_5555_5555_5555
}

#[inline]
fn byte(stream: u64, position: u64) -> u8 {
    word(stream, position / 8).to_le_bytes()[(position % 8) as usize]
}

/// Fills `out` with the stream's bytes from `position` on.
pub fn fill(stream: u64, position: u64, out: &mut [u8]) {
    let mut p = position;
    let mut rest = &mut out[..];
    while p % 8 != 0 && !rest.is_empty() {
        rest[0] = byte(stream, p);
        rest = &mut rest[1..];
        p += 1;
    }
    let mut chunks = rest.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(stream, p / 8).to_le_bytes());
        p += 8;
    }
    for b in chunks.into_remainder() {
        *b = byte(stream, p);
        p += 1;
    }
}

/// Checks that `data` is the stream's bytes from `position` on; returns the
/// offset of the first wrong byte.
pub fn check(stream: u64, position: u64, data: &[u8]) -> Result<(), usize> {
    let mut p = position;
    let mut i = 0;
    while p % 8 != 0 && i < data.len() {
        if data[i] != byte(stream, p) {
            return Err(i);
        }
        i += 1;
        p += 1;
    }
    while i + 8 <= data.len() {
        let got = u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
        if got != word(stream, p / 8) {
            let want = word(stream, p / 8).to_le_bytes();
            let first = (0..8).find(|k| data[i + k] != want[*k]).unwrap_or(0);
            return Err(i + first);
        }
        i += 8;
        p += 8;
    }
    while i < data.len() {
        if data[i] != byte(stream, p) {
            return Err(i);
        }
        i += 1;
        p += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_check_agree_at_any_alignment() {
        for start in 0..17u64 {
            for len in [0usize, 1, 7, 8, 9, 64, 100] {
                let mut buf = vec![0; len];
                fill(3, start, &mut buf);
                assert_eq!(check(3, start, &buf), Ok(()));
                if len > 0 {
                    buf[len / 2] ^= 1;
                    assert_eq!(check(3, start, &buf), Err(len / 2));
                }
            }
        }
    }

    #[test]
    fn streams_and_positions_differ() {
        let mut a = [0; 64];
        let mut b = [0; 64];
        fill(1, 0, &mut a);
        fill(2, 0, &mut b);
        assert_ne!(a, b);
        fill(1, 64, &mut b);
        assert_ne!(a, b);
    }
}
