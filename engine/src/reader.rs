//! Reading a repository's blobs and trees: [`BlobReader`] (through the index, a few packs
//! kept open), paths inside a snapshot, and the entries of a listing.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::index::Index;
use crate::pack::{self, BlobKind};
use crate::store::{Kind, ObjectReader, Store};
use crate::tree::{Node, NodeKind, Tree};

/// Splits a snapshot path into its non-empty components ("/a//b/" → ["a", "b"]).
pub fn split_path(path: &[u8]) -> Vec<&[u8]> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// Walks `comps` from the root tree. Returns the node (None for the root itself) and the
/// path prefix bytes ("/a/b").
pub fn lookup_path(
    reader: &mut BlobReader,
    root: Tree,
    comps: &[&[u8]],
    snap: &str,
    orig: &[u8],
) -> Result<(Option<Node>, Vec<u8>)> {
    let mut tree = root;
    let mut node: Option<Node> = None;
    let mut prefix = Vec::new();
    let not_found = || Error::PathNotFound {
        snapshot: snap.to_string(),
        path: String::from_utf8_lossy(orig).into_owned(),
    };
    for (i, c) in comps.iter().enumerate() {
        let n = tree.find(c).cloned().ok_or_else(not_found)?;
        prefix.push(b'/');
        prefix.extend_from_slice(c);
        if i + 1 < comps.len() {
            let sub = n.subtree.ok_or_else(not_found)?;
            tree = reader.load_tree(&sub)?;
        }
        node = Some(n);
    }
    Ok((node, prefix))
}

pub(crate) fn list_dir(
    reader: &mut BlobReader,
    tree: Option<ObjectId>,
    prefix: &[u8],
    recursive: bool,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let Some(id) = tree else { return Ok(()) };
    let t = reader.load_tree(&id)?;
    for n in &t.nodes {
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(&n.name);
        out.push(Entry::from_node(&p, n));
        if recursive && n.kind == NodeKind::Dir {
            list_dir(reader, n.subtree, &p, true, out)?;
        }
    }
    Ok(())
}

/// One entry of a snapshot listing.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Absolute path inside the snapshot (invalid UTF-8 replaced for display).
    pub path: String,
    #[serde(skip)]
    pub path_bytes: Vec<u8>,
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub size: u64,
    /// RFC 3339 modification time.
    pub mtime: String,
    /// Symlink target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Entry {
    pub(crate) fn from_node(path: &[u8], n: &Node) -> Self {
        let mtime = jiff::Timestamp::new(n.mtime.sec, n.mtime.nsec as i32)
            .map(|t| t.to_string())
            .unwrap_or_default();
        Entry {
            path: String::from_utf8_lossy(path).into_owned(),
            path_bytes: path.to_vec(),
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            user: n.user.clone(),
            group: n.group.clone(),
            size: n.size,
            mtime,
            target: (n.kind == NodeKind::Symlink)
                .then(|| String::from_utf8_lossy(&n.target).into_owned()),
        }
    }
}

/// Reads blobs through the index, keeping a few packs open.
pub struct BlobReader {
    store: Arc<dyn Store>,
    pub index: Arc<Index>,
    open: HashMap<ObjectId, Box<dyn ObjectReader>>,
    decoder: pack::BlobDecoder,
}

impl BlobReader {
    pub fn new(store: Arc<dyn Store>, index: Arc<Index>) -> Self {
        BlobReader {
            store,
            index,
            open: HashMap::new(),
            decoder: pack::BlobDecoder::default(),
        }
    }

    /// Reads, decompresses and checks one blob.
    pub fn read(&mut self, id: &ObjectId, kind: BlobKind) -> Result<Vec<u8>> {
        let (pack_id, entry) = self.index.lookup(id).ok_or_else(|| Error::MissingObject {
            what: kind.name(),
            id: id.to_hex(),
        })?;
        if !self.open.contains_key(&pack_id) {
            if self.open.len() >= 32 {
                self.open.clear();
            }
            let r = self.store.open(Kind::Packs, &pack_id.to_hex())?;
            self.open.insert(pack_id, r);
        }
        let r = self
            .open
            .get(&pack_id)
            .ok_or_else(|| Error::MissingObject {
                what: "pack",
                id: pack_id.to_hex(),
            })?;
        pack::read_blob(&**r, &entry, &mut self.decoder)
    }

    /// Reads and decodes a tree.
    pub fn load_tree(&mut self, id: &ObjectId) -> Result<Tree> {
        let data = self.read(id, BlobKind::Tree)?;
        Tree::decode(&data).map_err(|e| match e {
            Error::Corrupt { detail, .. } => Error::corrupt(format!("tree {id}"), detail),
            other => other,
        })
    }
}
