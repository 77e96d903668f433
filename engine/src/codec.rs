//! The small binary encoding shared by trees, pack tables and index files:
//! unsigned LEB128 varints, zig-zag signed varints, length-prefixed byte strings,
//! fixed 32-byte ids. See docs/repository-format.md §"Encoding".

use crate::error::{Error, Result};
use crate::id::ObjectId;

/// Appends encoded values to a byte vector.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder { buf: Vec::new() }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn uvar(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub fn ivar(&mut self, v: i64) {
        self.uvar(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.uvar(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    pub fn id(&mut self, id: &ObjectId) {
        self.buf.extend_from_slice(&id.0);
    }
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}

/// Reads encoded values from a byte slice; every read is bounds-checked.
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Decoder<'a> {
    /// `what` names the structure for error messages.
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Decoder { data, pos: 0, what }
    }
    fn err(&self, detail: &str) -> Error {
        Error::corrupt(self.what, format!("{detail} at byte {}", self.pos))
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
    pub fn u8(&mut self) -> Result<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }
    pub fn uvar(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.err("varint overflow"));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                // The encoding is minimal: a last byte of zero after others is an overlong form
                // of a shorter varint (docs/repository-format.md §"Encoding").
                if b == 0 && shift > 0 {
                    return Err(self.err("overlong varint"));
                }
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }
    /// A varint that must fit a `usize` no larger than `max`.
    pub fn len(&mut self, max: usize) -> Result<usize> {
        let v = self.uvar()?;
        if v > max as u64 {
            return Err(self.err("length out of range"));
        }
        Ok(v as usize)
    }
    pub fn ivar(&mut self) -> Result<i64> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.err("unexpected end"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len(self.remaining())?;
        self.raw(n)
    }
    pub fn id(&mut self) -> Result<ObjectId> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.raw(32)?);
        Ok(ObjectId(out))
    }
    /// Fails unless all input was consumed.
    pub fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(u in any::<u64>(), i in any::<i64>(), b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut e = Encoder::new();
            e.uvar(u);
            e.ivar(i);
            e.bytes(&b);
            let mut d = Decoder::new(&e.buf, "test");
            prop_assert_eq!(d.uvar().unwrap(), u);
            prop_assert_eq!(d.ivar().unwrap(), i);
            prop_assert_eq!(d.bytes().unwrap(), &b[..]);
            prop_assert!(d.finish().is_ok());
        }

        /// Every value has exactly one encoding: padding a varint with 0x80 continuation bytes
        /// and a final zero is refused.
        #[test]
        fn overlong_varints_are_refused(u in any::<u32>(), pad in 1usize..3) {
            let mut e = Encoder::new();
            e.uvar(u64::from(u));
            let mut bytes = e.buf.clone();
            let last = bytes.len() - 1;
            bytes[last] |= 0x80;
            bytes.extend(std::iter::repeat_n(0x80u8, pad - 1));
            bytes.push(0);
            prop_assert!(Decoder::new(&bytes, "test").uvar().is_err());
            prop_assert_eq!(Decoder::new(&e.buf, "test").uvar().unwrap(), u64::from(u));
        }
    }

    #[test]
    fn zero_is_one_byte() {
        assert_eq!(Decoder::new(&[0], "test").uvar().unwrap(), 0);
        assert!(Decoder::new(&[0x80, 0], "test").uvar().is_err());
        assert_eq!(Decoder::new(&[0x80, 1], "test").uvar().unwrap(), 128);
    }
}
