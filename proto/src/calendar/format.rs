//! The normalized form, as `systemd-analyze calendar` prints it.

use super::component::format_chain;
use super::{CalendarSpec, SpecZone};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `Mon..Wed,Fri`: runs of three or more days become ranges, runs of two stay a list.
fn format_weekdays(out: &mut String, bits: u8) {
    let mut first = true;
    let mut day = 0;
    while day < 7 {
        if bits & (1 << day) == 0 {
            day += 1;
            continue;
        }
        let mut end = day;
        while end + 1 < 7 && bits & (1 << (end + 1)) != 0 {
            end += 1;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(DAYS[day]);
        if end > day {
            out.push_str(if end > day + 1 { ".." } else { "," });
            out.push_str(DAYS[end]);
        }
        day = end + 1;
    }
}

pub(crate) fn normalized(spec: &CalendarSpec) -> String {
    let mut out = String::new();
    if let Some(bits) = spec.weekdays {
        format_weekdays(&mut out, bits);
        out.push(' ');
    }
    format_chain(&mut out, 4, &spec.year, false);
    out.push('-');
    format_chain(&mut out, 2, &spec.month, false);
    out.push(if spec.end_of_month { '~' } else { '-' });
    format_chain(&mut out, 2, &spec.day, false);
    out.push(' ');
    format_chain(&mut out, 2, &spec.hour, false);
    out.push(':');
    format_chain(&mut out, 2, &spec.minute, false);
    out.push(':');
    format_chain(&mut out, 2, &spec.second, true);
    match &spec.zone {
        SpecZone::Local => {}
        SpecZone::Utc => out.push_str(" UTC"),
        SpecZone::Named { name, .. } | SpecZone::LocalAbbrev { name, .. } => {
            if !name.is_empty() {
                out.push(' ');
                out.push_str(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::format_weekdays;

    fn wd(bits: u8) -> String {
        let mut s = String::new();
        format_weekdays(&mut s, bits);
        s
    }

    #[test]
    fn weekday_runs() {
        assert_eq!(wd(0b0011111), "Mon..Fri");
        assert_eq!(wd(0b1100000), "Sat,Sun");
        assert_eq!(wd(0b1111101), "Mon,Wed..Sun");
        assert_eq!(wd(0b1010101), "Mon,Wed,Fri,Sun");
        assert_eq!(wd(0b0000011), "Mon,Tue");
        assert_eq!(wd(0b1000000), "Sun");
    }
}
