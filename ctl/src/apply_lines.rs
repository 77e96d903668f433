//! The line of each entry's `name` in an apply document, so that errors about an entry (a name
//! defined twice) can point at the file.

/// Lines (1-based) of the `name` of each entry of `targets` and `jobs`, in list order; `None`
/// for an entry whose name was not found.
#[derive(Debug, Default, PartialEq)]
pub struct EntryLines {
    targets: Vec<Option<usize>>,
    jobs: Vec<Option<usize>>,
}

impl EntryLines {
    /// Finds the lines in a TOML or JSON document; empty when the document does not parse.
    pub fn find(text: &str, is_json: bool) -> EntryLines {
        if is_json {
            json_lines(text)
        } else {
            toml_lines(text).unwrap_or_default()
        }
    }

    /// The line of entry `i` of `list` (`targets` or `jobs`).
    pub fn line(&self, list: &str, i: usize) -> Option<usize> {
        let l = if list == "jobs" {
            &self.jobs
        } else {
            &self.targets
        };
        l.get(i).copied().flatten()
    }

    fn list(&mut self, key: &str) -> Option<&mut Vec<Option<usize>>> {
        match key {
            "targets" => Some(&mut self.targets),
            "jobs" => Some(&mut self.jobs),
            _ => None,
        }
    }
}

fn line_at(text: &str, offset: usize) -> Option<usize> {
    text.get(..offset)
        .map(|before| before.matches('\n').count() + 1)
}

fn toml_lines(text: &str) -> Option<EntryLines> {
    #[derive(serde::Deserialize)]
    struct Entry {
        name: Option<toml::Spanned<String>>,
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(default)]
        targets: Vec<Entry>,
        #[serde(default)]
        jobs: Vec<Entry>,
    }
    let doc: Doc = toml::from_str(text).ok()?;
    let line_of = |e: &Entry| e.name.as_ref().and_then(|n| line_at(text, n.span().start));
    Some(EntryLines {
        targets: doc.targets.iter().map(line_of).collect(),
        jobs: doc.jobs.iter().map(line_of).collect(),
    })
}

/// An open JSON container while scanning: an object with the last key read, or an array.
enum Frame {
    Object(Option<String>),
    Array,
}

/// Scans a JSON document (already known to be valid) for `{"targets"|"jobs": [{"name": ...}]}`.
fn json_lines(text: &str) -> EntryLines {
    let mut out = EntryLines::default();
    let mut stack: Vec<Frame> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                // An entry: an object in the array under a top-level key.
                if let [Frame::Object(Some(key)), Frame::Array] = stack.as_slice() {
                    let key = key.clone();
                    if let Some(l) = out.list(&key) {
                        l.push(None);
                    }
                }
                stack.push(Frame::Object(None));
            }
            b'[' => stack.push(Frame::Array),
            b'}' | b']' => {
                stack.pop();
            }
            b'"' => {
                let start = i;
                let mut s = Vec::new();
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    if let Some(b) = bytes.get(i) {
                        s.push(*b);
                    }
                    i += 1;
                }
                let rest = text.get(i + 1..).unwrap_or_default();
                let is_key = rest.trim_start().starts_with(':');
                if is_key {
                    let key = String::from_utf8_lossy(&s).into_owned();
                    if let [Frame::Object(Some(list)), Frame::Array, Frame::Object(_)] =
                        stack.as_slice()
                    {
                        if key == "name" {
                            let list = list.clone();
                            let line = line_at(text, start);
                            if let Some(slot) = out.list(&list).and_then(|l| l.last_mut()) {
                                *slot = line;
                            }
                        }
                    }
                    if let Some(Frame::Object(k)) = stack.last_mut() {
                        *k = Some(key);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_entries_are_found_by_line() {
        let doc = "{\n  \"targets\": [{\"name\": \"t\", \"path\": \"/x\"}],\n  \"jobs\": [\n    {\"name\": \"a\", \"hooks\": {\"pre\": \"echo \\\"}\"}},\n    {\"sources\": [\"/s\"],\n     \"name\": \"b\"}\n  ]\n}\n";
        let l = EntryLines::find(doc, true);
        assert_eq!(l.targets, vec![Some(2)]);
        assert_eq!(l.jobs, vec![Some(4), Some(6)]);
    }

    #[test]
    fn toml_entries_are_found_by_line() {
        let doc = "[[jobs]]\nname = \"a\"\n\n[[targets]]\npath = \"/x\"\nname = \"t\"\n[[jobs]]\nname = \"b\"\n";
        let l = EntryLines::find(doc, false);
        assert_eq!(l.targets, vec![Some(6)]);
        assert_eq!(l.jobs, vec![Some(2), Some(8)]);
        assert_eq!(EntryLines::find("not toml [", false), EntryLines::default());
    }
}
