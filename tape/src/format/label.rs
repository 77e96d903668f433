//! Tape file 0: the medium's label (docs/tape-format.md, "The label").

use crate::{Result, TapeError};

/// The first line of a label.
pub const LABEL_MAGIC: &str = "BMS-TAPE-LABEL 1";
/// The on-tape format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A medium's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The media id / barcode.
    pub barcode: String,
    /// The media pool.
    pub pool: String,
    /// The media set (empty while the medium is scratch).
    pub media_set: String,
    /// The medium's sequence number in its media set (1-based, 0 while scratch).
    pub sequence: u32,
    /// When the medium was labelled, seconds since the epoch (UTC).
    pub labelled: i64,
    /// The block size of every file on this medium.
    pub block_size: u32,
}

fn value_ok(v: &str) -> bool {
    !v.contains('\n') && !v.contains('\0')
}

impl Label {
    /// The label's bytes: text lines, zero-padded to one block.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if !value_ok(&self.pool) || !value_ok(&self.media_set) || !value_ok(&self.barcode) {
            return Err(TapeError::Invalid(
                "a label field holds a newline or NUL: use plain names for barcode, pool and media set".into(),
            ));
        }
        let text = format!(
            "{LABEL_MAGIC}\nbarcode={}\npool={}\nmedia_set={}\nsequence={}\nlabelled={}\nblock_size={}\nformat={FORMAT_VERSION}\n",
            self.barcode, self.pool, self.media_set, self.sequence, self.labelled, self.block_size
        );
        let bs = self.block_size as usize;
        if text.len() > bs {
            return Err(TapeError::Invalid(format!(
                "the label needs {} bytes, more than the block size {bs}",
                text.len()
            )));
        }
        let mut block = text.into_bytes();
        block.resize(bs, 0);
        Ok(block)
    }

    /// Parses a label block.
    pub fn decode(block: &[u8]) -> Result<Label> {
        let end = block.iter().position(|&b| b == 0).unwrap_or(block.len());
        let text = std::str::from_utf8(&block[..end])
            .map_err(|_| TapeError::Format("tape file 0 is not a bms label (not text)".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some(LABEL_MAGIC) {
            return Err(TapeError::Format(format!(
                "tape file 0 does not start with `{LABEL_MAGIC}`: the medium is not labelled by bms (label it first: docs/tape.md, \"Labelling media\")"
            )));
        }
        let mut map = std::collections::HashMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once('=') {
                map.insert(k, v);
            }
        }
        let get = |k: &str| {
            map.get(k)
                .map(|v| v.to_string())
                .ok_or_else(|| TapeError::Format(format!("the label has no `{k}`")))
        };
        let num = |k: &str| -> Result<i64> {
            get(k)?
                .parse()
                .map_err(|_| TapeError::Format(format!("the label's `{k}` is not a number")))
        };
        let format = num("format")?;
        if format != i64::from(FORMAT_VERSION) {
            return Err(TapeError::Format(format!(
                "the label says format {format}; this bms reads format {FORMAT_VERSION}: upgrade bms"
            )));
        }
        Ok(Label {
            barcode: get("barcode")?,
            pool: get("pool")?,
            media_set: get("media_set")?,
            sequence: u32::try_from(num("sequence")?)
                .map_err(|_| TapeError::Format("bad sequence".into()))?,
            labelled: num("labelled")?,
            block_size: u32::try_from(num("block_size")?)
                .map_err(|_| TapeError::Format("bad block size".into()))?,
        })
    }
}
