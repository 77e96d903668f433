//! Content-defined chunking with FastCDC (v2020 variant of the `fastcdc` crate, exact version
//! pinned: the cut points decide deduplication, and the golden test below guards them).

use std::fs::File;
use std::os::unix::fs::FileExt;

use fastcdc::v2020::{self, Normalization};

use crate::config::ChunkerParams;
use crate::error::{Error, Result};

/// A reusable chunker with its own read buffer.
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    masks: (u64, u64, u64, u64),
    buf: Vec<u8>,
}

impl Chunker {
    /// Buffer size is a few maximum chunks, so memory per chunker is bounded.
    pub fn new(p: &ChunkerParams) -> Self {
        let level = match p.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        };
        let (s, l) = v2020::select_masks(p.avg_size as usize, level);
        let max = p.max_size as usize;
        Chunker {
            min: p.min_size as usize,
            avg: p.avg_size as usize,
            max,
            masks: (s, l, s << 1, l << 1),
            buf: vec![0u8; (2 * max).max(8 << 20)],
        }
    }

    /// Length of the next chunk at the start of `data` (`data` is all there is, or at least
    /// `max_size` bytes).
    pub fn next_cut(&self, data: &[u8]) -> usize {
        let (s, l, sl, ll) = self.masks;
        let (_, n) = v2020::cut(data, self.min, self.avg, self.max, s, l, sl, ll);
        n.max(1).min(data.len())
    }

    /// Cuts an in-memory buffer completely.
    pub fn cut_all(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let n = self.next_cut(&data[pos..]);
            out.push(n);
            pos += n;
        }
        out
    }

    /// Reads `len` bytes of `file` from `offset` and calls `f` with each chunk in order.
    /// Stops early (returning the bytes read so far) if the file turns out shorter.
    pub fn chunk_file(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> std::io::Result<std::result::Result<u64, Error>> {
        let mut filled = 0usize;
        let mut pos = 0usize;
        let mut read_total: u64 = 0;
        let mut eof = false;
        loop {
            // Refill when less than a maximum chunk is buffered.
            if !eof && filled - pos < self.max {
                self.buf.copy_within(pos..filled, 0);
                filled -= pos;
                pos = 0;
                while filled < self.buf.len() && read_total < len {
                    let want = ((self.buf.len() - filled) as u64).min(len - read_total) as usize;
                    let n = match file
                        .read_at(&mut self.buf[filled..filled + want], offset + read_total)
                    {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    if n == 0 {
                        break;
                    }
                    filled += n;
                    read_total += n as u64;
                }
                if read_total >= len || filled < self.buf.len() {
                    eof = true;
                }
            }
            if pos >= filled {
                return Ok(Ok(read_total));
            }
            let n = self.next_cut(&self.buf[pos..filled]);
            if let Err(e) = f(&self.buf[pos..pos + n]) {
                return Ok(Err(e));
            }
            pos += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    /// Deterministic pseudo-random bytes (xorshift), independent of any RNG crate.
    pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out.extend_from_slice(&seed.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn small_params() -> ChunkerParams {
        ChunkerParams {
            min_size: 2048,
            avg_size: 8192,
            max_size: 65536,
            ..ChunkerParams::default()
        }
    }

    /// Golden cut points: if this fails, the chunker changed and deduplication against
    /// existing repositories would break. Do not update the numbers without a format bump.
    #[test]
    fn golden_cut_points() {
        let data = pseudo_random(4 << 20, 0x0123_4567_89ab_cdef);
        let cuts = Chunker::new(&ChunkerParams::default()).cut_all(&data);
        assert_eq!(
            cuts,
            [682688, 378752, 590028, 1624223, 918613],
            "default cut points changed"
        );
        let small = Chunker::new(&small_params()).cut_all(&data);
        assert_eq!(small.iter().sum::<usize>(), data.len());
        let digest = blake3::hash(format!("{small:?}").as_bytes())
            .to_hex()
            .to_string();
        assert_eq!(
            &digest[..16],
            GOLDEN_SMALL,
            "small-parameter cut points changed"
        );
    }
    const GOLDEN_SMALL: &str = "21a42fdf758d3143";

    #[test]
    fn file_chunking_matches_memory() {
        let data = pseudo_random(3 << 20, 42);
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(&data).unwrap();
        let mut c = Chunker::new(&small_params());
        let expect = c.cut_all(&data);
        let mut got = Vec::new();
        let n = c.chunk_file(&tmp, 0, data.len() as u64, |ch| {
            got.push(ch.len());
            Ok(())
        });
        assert_eq!(n.unwrap().unwrap(), data.len() as u64);
        assert_eq!(got, expect);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Same input → same cuts; inserting bytes near the start leaves later cut points
        /// (relative to the end) unchanged.
        #[test]
        fn deterministic_and_shift_resistant(seed in any::<u64>(), insert in proptest::collection::vec(any::<u8>(), 1..100)) {
            let c = Chunker::new(&small_params());
            let data = pseudo_random(600_000, seed | 1);
            let a = c.cut_all(&data);
            prop_assert_eq!(&a, &c.cut_all(&data));
            let mut shifted = insert.clone();
            shifted.extend_from_slice(&data);
            let b = c.cut_all(&shifted);
            // Cut positions measured from the end of the data.
            let ends = |cuts: &[usize], total: usize| {
                let mut pos = 0; let mut v = std::collections::HashSet::new();
                for n in cuts { pos += n; v.insert(total - pos); }
                v
            };
            let ea = ends(&a, data.len());
            let eb = ends(&b, shifted.len());
            let common = ea.intersection(&eb).count();
            // All but the first few boundaries must survive the shift.
            prop_assert!(common + 3 >= ea.len(), "only {} of {} cut points survived", common, ea.len());
        }
    }
}
