//! Trees: one directory's entries with their metadata, stored as blobs of kind `tree`.
//! Binary layout in docs/repository-format.md §"Trees".

use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Result};
use crate::id::ObjectId;

pub const TREE_VERSION: u8 = 1;

/// Type of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    File = 1,
    Dir = 2,
    Symlink = 3,
    CharDev = 4,
    BlockDev = 5,
    Fifo = 6,
    Socket = 7,
}

impl NodeKind {
    fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            1 => NodeKind::File,
            2 => NodeKind::Dir,
            3 => NodeKind::Symlink,
            4 => NodeKind::CharDev,
            5 => NodeKind::BlockDev,
            6 => NodeKind::Fifo,
            7 => NodeKind::Socket,
            _ => return Err(Error::corrupt("tree", format!("unknown node type {v}"))),
        })
    }
    /// One-letter type as `ls -l` shows it.
    pub fn letter(self) -> char {
        match self {
            NodeKind::File => '-',
            NodeKind::Dir => 'd',
            NodeKind::Symlink => 'l',
            NodeKind::CharDev => 'c',
            NodeKind::BlockDev => 'b',
            NodeKind::Fifo => 'p',
            NodeKind::Socket => 's',
        }
    }
}

/// A piece of a regular file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRef {
    /// A data chunk of `len` bytes.
    Chunk { id: ObjectId, len: u32 },
    /// A hole (sparse region) of `len` zero bytes that is not stored.
    Hole { len: u64 },
}

impl ContentRef {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn len(&self) -> u64 {
        match self {
            ContentRef::Chunk { len, .. } => u64::from(*len),
            ContentRef::Hole { len } => *len,
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Raw file name bytes (may be invalid UTF-8; never contains '/' or NUL).
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid/setgid/sticky (mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Owner and group names at backup time (empty when unknown).
    pub user: String,
    pub group: String,
    pub mtime: Time,
    pub ctime: Time,
    pub inode: u64,
    pub dev: u64,
    pub nlink: u64,
    pub size: u64,
    /// Device number of character and block devices.
    pub rdev: u64,
    /// Symlink target bytes.
    pub target: Vec<u8>,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// File content in order (files only).
    pub content: Vec<ContentRef>,
    /// The directory's own tree (directories only).
    pub subtree: Option<ObjectId>,
}

impl Node {
    /// A node with the given name and kind and empty metadata.
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Self {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Time::default(),
            ctime: Time::default(),
            inode: 0,
            dev: 0,
            nlink: 1,
            size: 0,
            rdev: 0,
            target: Vec::new(),
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
        }
    }
}

/// True for a name that is safe to create inside a directory: not empty, not `.` or `..`,
/// and without `/` or NUL.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// A directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Sorted by name bytes, names unique.
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(TREE_VERSION);
        e.uvar(self.nodes.len() as u64);
        for n in &self.nodes {
            e.bytes(&n.name);
            e.u8(n.kind as u8);
            e.uvar(u64::from(n.mode));
            e.uvar(u64::from(n.uid));
            e.uvar(u64::from(n.gid));
            e.bytes(n.user.as_bytes());
            e.bytes(n.group.as_bytes());
            e.ivar(n.mtime.sec);
            e.uvar(u64::from(n.mtime.nsec));
            e.ivar(n.ctime.sec);
            e.uvar(u64::from(n.ctime.nsec));
            e.uvar(n.inode);
            e.uvar(n.dev);
            e.uvar(n.nlink);
            e.uvar(n.size);
            e.uvar(n.rdev);
            e.bytes(&n.target);
            e.uvar(n.xattrs.len() as u64);
            for (k, v) in &n.xattrs {
                e.bytes(k);
                e.bytes(v);
            }
            e.uvar(n.content.len() as u64);
            for c in &n.content {
                match c {
                    ContentRef::Chunk { id, len } => {
                        e.u8(0);
                        e.id(id);
                        e.uvar(u64::from(*len));
                    }
                    ContentRef::Hole { len } => {
                        e.u8(1);
                        e.uvar(*len);
                    }
                }
            }
            match &n.subtree {
                Some(id) => {
                    e.u8(1);
                    e.id(id);
                }
                None => e.u8(0),
            }
            // Extension fields (tag, bytes); none defined in version 1.
            e.uvar(0);
        }
        e.buf
    }

    pub fn decode(data: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(data, "tree");
        let v = d.u8()?;
        if v != TREE_VERSION {
            return Err(Error::corrupt("tree", format!("unknown tree version {v}")));
        }
        let max = data.len();
        let count = d.len(max)?;
        let mut nodes = Vec::with_capacity(count.min(1 << 16));
        let u32f =
            |v: u64| u32::try_from(v).map_err(|_| Error::corrupt("tree", "value out of range"));
        let string = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|_| Error::corrupt("tree", "owner name is not UTF-8"))
        };
        for _ in 0..count {
            let name = d.bytes()?.to_vec();
            let kind = NodeKind::from_u8(d.u8()?)?;
            let mut n = Node::new(name, kind);
            n.mode = u32f(d.uvar()?)?;
            n.uid = u32f(d.uvar()?)?;
            n.gid = u32f(d.uvar()?)?;
            n.user = string(d.bytes()?)?;
            n.group = string(d.bytes()?)?;
            n.mtime = Time {
                sec: d.ivar()?,
                nsec: u32f(d.uvar()?)?,
            };
            n.ctime = Time {
                sec: d.ivar()?,
                nsec: u32f(d.uvar()?)?,
            };
            n.inode = d.uvar()?;
            n.dev = d.uvar()?;
            n.nlink = d.uvar()?;
            n.size = d.uvar()?;
            n.rdev = d.uvar()?;
            n.target = d.bytes()?.to_vec();
            let nx = d.len(max)?;
            for _ in 0..nx {
                let k = d.bytes()?.to_vec();
                let v = d.bytes()?.to_vec();
                n.xattrs.push((k, v));
            }
            let nc = d.len(max)?;
            n.content.reserve(nc.min(1 << 16));
            for _ in 0..nc {
                n.content.push(match d.u8()? {
                    0 => ContentRef::Chunk {
                        id: d.id()?,
                        len: u32f(d.uvar()?)?,
                    },
                    1 => ContentRef::Hole { len: d.uvar()? },
                    t => return Err(Error::corrupt("tree", format!("unknown content tag {t}"))),
                });
            }
            n.subtree = match d.u8()? {
                0 => None,
                1 => Some(d.id()?),
                t => return Err(Error::corrupt("tree", format!("bad subtree flag {t}"))),
            };
            let next = d.len(max)?;
            for _ in 0..next {
                d.uvar()?;
                d.bytes()?;
            }
            nodes.push(n);
        }
        d.finish()?;
        Ok(Tree { nodes })
    }

    /// Structural checks a reader relies on: safe unique sorted names, fields that match the
    /// node type, content lengths that add up to the size.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (i, n) in self.nodes.iter().enumerate() {
            if !valid_name(&n.name) {
                return Err(format!(
                    "unsafe entry name {:?}",
                    String::from_utf8_lossy(&n.name)
                ));
            }
            if i > 0 && self.nodes[i - 1].name >= n.name {
                return Err(format!(
                    "entries not sorted/unique at {:?}",
                    String::from_utf8_lossy(&n.name)
                ));
            }
            if (n.kind == NodeKind::Dir) != n.subtree.is_some() {
                return Err(format!(
                    "{:?}: subtree does not match its type",
                    String::from_utf8_lossy(&n.name)
                ));
            }
            if n.kind == NodeKind::File {
                let total: u64 = n.content.iter().map(ContentRef::len).sum();
                if total != n.size {
                    return Err(format!(
                        "{:?}: content adds up to {total} bytes, size says {}",
                        String::from_utf8_lossy(&n.name),
                        n.size
                    ));
                }
            } else if !n.content.is_empty() {
                return Err(format!(
                    "{:?}: content on a non-file",
                    String::from_utf8_lossy(&n.name)
                ));
            }
        }
        Ok(())
    }

    /// Finds a node by name (binary search; nodes are sorted).
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(any::<u8>(), 1..20),
            1u8..8,
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                "[a-z]{0,8}",
                "[a-z]{0,8}",
            ),
            (
                any::<i64>(),
                0u32..1_000_000_000,
                any::<u64>(),
                any::<u64>(),
            ),
            proptest::collection::vec(any::<u8>(), 0..10),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..10),
                    proptest::collection::vec(any::<u8>(), 0..10),
                ),
                0..3,
            ),
            proptest::collection::vec((any::<bool>(), any::<[u8; 32]>(), any::<u32>()), 0..4),
            proptest::option::of(any::<[u8; 32]>()),
        )
            .prop_map(
                |(
                    name,
                    k,
                    (mode, uid, gid, user, group),
                    (sec, nsec, inode, size),
                    target,
                    xattrs,
                    content,
                    sub,
                )| {
                    let mut n = Node::new(name, NodeKind::from_u8(k).unwrap());
                    n.mode = mode;
                    n.uid = uid;
                    n.gid = gid;
                    n.user = user;
                    n.group = group;
                    n.mtime = Time { sec, nsec };
                    n.ctime = Time {
                        sec: -sec / 2,
                        nsec,
                    };
                    n.inode = inode;
                    n.size = size;
                    n.target = target;
                    n.xattrs = xattrs;
                    n.content = content
                        .into_iter()
                        .map(|(h, id, len)| {
                            if h {
                                ContentRef::Hole {
                                    len: u64::from(len),
                                }
                            } else {
                                ContentRef::Chunk {
                                    id: ObjectId(id),
                                    len,
                                }
                            }
                        })
                        .collect();
                    n.subtree = sub.map(ObjectId);
                    n
                },
            )
    }

    proptest! {
        #[test]
        fn tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..6)) {
            let t = Tree { nodes };
            prop_assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
        }
    }

    #[test]
    fn names() {
        assert!(valid_name(b"a\nb"));
        assert!(valid_name(&[0xff, 0xfe]));
        for bad in [&b""[..], b".", b"..", b"a/b", b"../x", b"a\0"] {
            assert!(!valid_name(bad));
        }
    }
}
