#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The st driver's ioctl numbers, struct layouts, operation codes and status bits against the
//! system's `<sys/mtio.h>`, through a C program compiled here (docs/tape.md, "The st driver").

use bms_tape::st::sys::*;
use std::mem::{offset_of, size_of};
use std::process::Command;

const PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mtio.h>
#define P(name, value) printf("%s %llu\n", name, (unsigned long long)(value))
int main(void) {
    P("MTIOCTOP", MTIOCTOP); P("MTIOCGET", MTIOCGET); P("MTIOCPOS", MTIOCPOS);
    P("sizeof_mtop", sizeof(struct mtop)); P("sizeof_mtget", sizeof(struct mtget));
    P("sizeof_mtpos", sizeof(struct mtpos));
    P("mtop.mt_op", offsetof(struct mtop, mt_op)); P("mtop.mt_count", offsetof(struct mtop, mt_count));
    P("mtget.mt_type", offsetof(struct mtget, mt_type)); P("mtget.mt_resid", offsetof(struct mtget, mt_resid));
    P("mtget.mt_dsreg", offsetof(struct mtget, mt_dsreg)); P("mtget.mt_gstat", offsetof(struct mtget, mt_gstat));
    P("mtget.mt_erreg", offsetof(struct mtget, mt_erreg)); P("mtget.mt_fileno", offsetof(struct mtget, mt_fileno));
    P("mtget.mt_blkno", offsetof(struct mtget, mt_blkno)); P("mtpos.mt_blkno", offsetof(struct mtpos, mt_blkno));
    P("sizeof_mt_fileno", sizeof(((struct mtget *)0)->mt_fileno));
    P("MTFSF", MTFSF); P("MTBSF", MTBSF); P("MTWEOF", MTWEOF); P("MTREW", MTREW); P("MTOFFL", MTOFFL);
    P("MTEOM", MTEOM); P("MTSETBLK", MTSETBLK); P("MTLOCK", MTLOCK); P("MTUNLOCK", MTUNLOCK); P("MTLOAD", MTLOAD);
    P("GMT_EOF", GMT_EOF(0xffffffffUL)); P("GMT_BOT", GMT_BOT(0xffffffffUL)); P("GMT_EOT", GMT_EOT(0xffffffffUL));
    P("GMT_EOD", GMT_EOD(0xffffffffUL)); P("GMT_WR_PROT", GMT_WR_PROT(0xffffffffUL));
    P("GMT_ONLINE", GMT_ONLINE(0xffffffffUL)); P("GMT_DR_OPEN", GMT_DR_OPEN(0xffffffffUL));
    P("MT_ST_BLKSIZE_MASK", MT_ST_BLKSIZE_MASK); P("MT_ST_BLKSIZE_SHIFT", MT_ST_BLKSIZE_SHIFT);
    return 0;
}
"#;

#[test]
fn ioctl_numbers_and_layouts_match_sys_mtio_h() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mtio.c");
    let bin = dir.path().join("mtio");
    std::fs::write(&src, PROGRAM).unwrap();
    let cc = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("run cc (install gcc)");
    assert!(
        cc.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&bin).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let c: std::collections::HashMap<&str, u64> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k, v.parse().unwrap())
        })
        .collect();
    let rust: Vec<(&str, u64)> = vec![
        ("MTIOCTOP", MTIOCTOP),
        ("MTIOCGET", MTIOCGET),
        ("MTIOCPOS", MTIOCPOS),
        ("sizeof_mtop", size_of::<MtOp>() as u64),
        ("sizeof_mtget", size_of::<MtGet>() as u64),
        ("sizeof_mtpos", size_of::<MtPos>() as u64),
        ("mtop.mt_op", offset_of!(MtOp, mt_op) as u64),
        ("mtop.mt_count", offset_of!(MtOp, mt_count) as u64),
        ("mtget.mt_type", offset_of!(MtGet, mt_type) as u64),
        ("mtget.mt_resid", offset_of!(MtGet, mt_resid) as u64),
        ("mtget.mt_dsreg", offset_of!(MtGet, mt_dsreg) as u64),
        ("mtget.mt_gstat", offset_of!(MtGet, mt_gstat) as u64),
        ("mtget.mt_erreg", offset_of!(MtGet, mt_erreg) as u64),
        ("mtget.mt_fileno", offset_of!(MtGet, mt_fileno) as u64),
        ("mtget.mt_blkno", offset_of!(MtGet, mt_blkno) as u64),
        ("mtpos.mt_blkno", offset_of!(MtPos, mt_blkno) as u64),
        ("sizeof_mt_fileno", size_of::<libc::c_int>() as u64),
        ("MTFSF", MTFSF as u64),
        ("MTBSF", MTBSF as u64),
        ("MTWEOF", MTWEOF as u64),
        ("MTREW", MTREW as u64),
        ("MTOFFL", MTOFFL as u64),
        ("MTEOM", MTEOM as u64),
        ("MTSETBLK", MTSETBLK as u64),
        ("MTLOCK", MTLOCK as u64),
        ("MTUNLOCK", MTUNLOCK as u64),
        ("MTLOAD", MTLOAD as u64),
        ("GMT_EOF", GMT_EOF as u64),
        ("GMT_BOT", GMT_BOT as u64),
        ("GMT_EOT", GMT_EOT as u64),
        ("GMT_EOD", GMT_EOD as u64),
        ("GMT_WR_PROT", GMT_WR_PROT as u64),
        ("GMT_ONLINE", GMT_ONLINE as u64),
        ("GMT_DR_OPEN", GMT_DR_OPEN as u64),
        ("MT_ST_BLKSIZE_MASK", MT_ST_BLKSIZE_MASK),
        ("MT_ST_BLKSIZE_SHIFT", MT_ST_BLKSIZE_SHIFT as u64),
    ];
    assert_eq!(
        rust.len(),
        c.len(),
        "the C program printed {} values",
        c.len()
    );
    for (name, value) in rust {
        assert_eq!(
            Some(&value),
            c.get(name),
            "{name}: Rust {value:#x}, <sys/mtio.h> {:?}",
            c.get(name)
        );
    }
}
