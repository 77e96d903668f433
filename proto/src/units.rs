//! Sizes for people: `1.5 GiB`.

/// Formats a byte count with binary units and one decimal (`12 B`, `5.0 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::human_bytes(12), "12 B");
        assert_eq!(super::human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
    }
}
