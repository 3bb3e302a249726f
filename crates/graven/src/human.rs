//! Numbers, rates, sizes and times as people read them: `1,234,567 entries`, `208,117/s`,
//! `1.5 MiB`, `2 min 5 s`, and the progress bar every long command shows on a terminal (and
//! never in a pipe or a log file).

use std::io::IsTerminal;

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and the noun, singular for one: `1 bundle`, `2 bundles`, `1,000 entries`.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// A rate per second: whole numbers from 100 on (`208,117/s`), three significant digits below
/// (`12.3/s`, `0.05/s`).
pub fn rate(per_second: f64) -> String {
    if !per_second.is_finite() || per_second <= 0.0 {
        return "0/s".to_owned();
    }
    if per_second >= 100.0 {
        return format!("{}/s", count(per_second.round() as u64));
    }
    let decimals = if per_second >= 10.0 {
        1
    } else if per_second >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{per_second:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s };
    format!("{s}/s")
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v >= 100.0 { format!("{v:.0} {}", UNITS[unit]) } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// A duration: `0.02 s`, `12.5 s`, `2 min 5 s`, `3 h 4 min`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".to_owned();
    }
    if secs < 60.0 {
        return if secs < 10.0 { format!("{secs:.2} s") } else { format!("{secs:.1} s") };
    }
    let whole = secs.round() as u64;
    let (h, m, s) = (whole / 3600, (whole % 3600) / 60, whole % 60);
    if h > 0 { format!("{h} h {m} min") } else { format!("{m} min {s} s") }
}

/// A progress bar for `what` (e.g. `verifying`, `exporting`) counted in `unit` (e.g.
/// `entries`), on standard error when it is a terminal; `None` otherwise, so that pipes,
/// files and logs never get one.
pub fn progress(what: &str, unit: &str, total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let template =
        format!("{{spinner}} {what} [{{bar:40}}] {{done}}/{{total}} {unit} ({{rate}}, eta {{eta}})");
    let style = indicatif::ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .with_key("done", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&count(s.pos()));
        })
        .with_key("total", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&s.len().map_or_else(|| "?".to_owned(), count));
        })
        .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(s.per_sec()));
        });
    bar.set_style(style);
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(counted(1, "bundle", "bundles"), "1 bundle");
        assert_eq!(counted(0, "bundle", "bundles"), "0 bundles");
        assert_eq!(counted(12_000, "entry", "entries"), "12,000 entries");
        // What indicatif printed before: "208,116.8154/s".
        assert_eq!(rate(208_116.815_4), "208,117/s");
        assert_eq!(rate(12.345), "12.3/s");
        assert_eq!(rate(1.5), "1.5/s");
        assert_eq!(rate(0.05), "0.05/s");
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(14_454_856), "13.8 MiB");
        assert_eq!(bytes(500 << 30), "500 GiB");
        assert_eq!(duration(0.0213), "0.02 s");
        assert_eq!(duration(12.46), "12.5 s");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(3.0 * 3600.0 + 240.0), "3 h 4 min");
    }
}
