//! Elapse calculations (checked against systemd-analyze 252).
