//! A page rendered by headless Chromium (Debian's `chromium`, scripts/test-packages) with the
//! network cut off, and its screenshot decoded (PNG: chunks, zlib, scanline filters — by
//! Python's standard library) to check that something was drawn.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Decodes an 8-bit RGB/RGBA PNG and prints JSON: width, height, the share of pixels that are
/// not the top-left (background) colour, the number of distinct colours, and how many pixels
/// lie within 8 of each colour given as `#rrggbb` arguments.
const DECODE: &str = r#"
import json, struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w, h, ct = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ct = struct.unpack('>IIBB', body[:10])
        assert depth == 8 and ct in (2, 6), 'unexpected PNG format %d/%d' % (depth, ct)
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
bpp = 3 if ct == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
rows, prev, i = [], bytearray(stride), 0
for _ in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
bg = rows[0][:3]
want = [tuple(int(c[k:k + 2], 16) for k in (1, 3, 5)) for c in sys.argv[2:]]
near = [0] * len(want)
other, colours = 0, set()
for r in rows:
    for x in range(0, stride, bpp):
        px = r[x:x + 3]
        colours.add(bytes(px))
        if px != bg: other += 1
        for k, c in enumerate(want):
            if all(abs(px[j] - c[j]) <= 8 for j in range(3)): near[k] += 1
print(json.dumps({'width': w, 'height': h, 'non_background': other / float(w * h),
                  'colours': len(colours), 'near': near}))
"#;

/// Renders `page` (a local HTML file) with headless Chromium at `width`×`height` into `png`,
/// with no network: in a new network namespace when root, else behind a proxy that refuses.
pub fn render(page: &Path, png: &Path, width: u32, height: u32) {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("unshare");
        c.args(["--net", "--", "chromium"]);
        c
    } else {
        let mut c = Command::new("chromium");
        c.args([
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
        ]);
        c
    };
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        "--disable-background-networking",
        "--disable-component-update",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--window-size={width},{height}"))
    .arg(format!("--screenshot={}", png.display()))
    .arg(format!("file://{}", page.display()))
    .env("HOME", profile.path());
    let out = cmd
        .output()
        .expect("run chromium (Debian package chromium)");
    assert!(
        out.status.success() && png.exists(),
        "chromium did not write a screenshot: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Decodes `png` and reports what it shows (see [`DECODE`]); `colours` are `#rrggbb`.
pub fn inspect(png: &Path, colours: &[&str]) -> Value {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", DECODE])
        .arg(png)
        .args(colours)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "cannot decode {}: {}",
        png.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("decoder JSON")
}
