//! The two text formats a scraper can ask `/metrics` for, and the conversion between them.
//!
//! The registry encodes OpenMetrics 1.0 text. The classic Prometheus text format (version
//! 0.0.4, what `curl` and most older scrapers read) carries the same samples with three
//! differences in the metadata: a counter family is named after its `_total` sample, an
//! `info` family is a gauge named `<name>_info`, and there are no `# UNIT` lines and no
//! `# EOF` terminator. Sources: the OpenMetrics 1.0 specification ("Counter", "Info",
//! "Overall structure") and Prometheus' "Exposition formats" page (text format 0.0.4).

use std::collections::HashMap;

/// Which text format an answer is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    /// `text/plain; version=0.0.4`: the default.
    Classic,
    /// `application/openmetrics-text; version=1.0.0`: when the `Accept` header prefers it.
    OpenMetrics,
}

const OPENMETRICS: &str = "application/openmetrics-text";

impl Exposition {
    /// The format an `Accept` header asks for: OpenMetrics when it lists
    /// `application/openmetrics-text` with a quality above zero and not below that of
    /// `text/plain`; the classic format otherwise (no header, `*/*`, `text/plain`, or
    /// anything this endpoint does not serve).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else { return Exposition::Classic };
        let (mut om, mut plain) = (None::<f32>, None::<f32>);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)))
                .unwrap_or(0.0);
            let slot = match media.as_str() {
                OPENMETRICS => &mut om,
                "text/plain" => &mut plain,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
        }
        match om {
            Some(q) if q > 0.0 && q >= plain.unwrap_or(0.0) => Exposition::OpenMetrics,
            _ => Exposition::Classic,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Classic => "text/plain; version=0.0.4; charset=utf-8",
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The classic text format of an OpenMetrics exposition: samples unchanged, metadata renamed
/// as the classic format names it, `# UNIT` and `# EOF` dropped.
pub fn openmetrics_to_classic(openmetrics: &str) -> String {
    let types: HashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    // A family's name in the classic format, and its classic type.
    let classic = |name: &str| -> (String, &'static str) {
        match types.get(name).copied().unwrap_or("unknown") {
            "counter" => (format!("{name}_total"), "counter"),
            "info" => (format!("{name}_info"), "gauge"),
            "gauge" => (name.to_owned(), "gauge"),
            "histogram" => (name.to_owned(), "histogram"),
            "summary" => (name.to_owned(), "summary"),
            _ => (name.to_owned(), "untyped"),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_once(' ').map_or(rest, |(n, _)| n);
            let (name, ty) = classic(name);
            out.push_str(&format!("# TYPE {name} {ty}\n"));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            // OpenMetrics escapes `"` in help text; the classic format escapes only `\` and
            // line feeds, so an escaped quote becomes a plain one.
            let help = help.replace("\\\"", "\"");
            out.push_str(&format!("# HELP {} {help}\n", classic(name).0));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        use Exposition::*;
        assert_eq!(Exposition::negotiate(None), Classic);
        assert_eq!(Exposition::negotiate(Some("*/*")), Classic);
        assert_eq!(Exposition::negotiate(Some("text/plain")), Classic);
        assert_eq!(Exposition::negotiate(Some("application/json")), Classic);
        assert_eq!(Exposition::negotiate(Some("application/openmetrics-text")), OpenMetrics);
        // What Prometheus 2.x sends by default.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Exposition::negotiate(Some(prometheus)), OpenMetrics);
        assert_eq!(
            Exposition::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Classic
        );
        assert_eq!(Exposition::negotiate(Some("Application/OpenMetrics-Text; q=0")), Classic);
        assert_eq!(Exposition::negotiate(Some("application/openmetrics-text;q=bogus")), Classic);
    }

    #[test]
    fn classic_renames_counters_and_info_and_drops_unit_and_eof() {
        let om = "# HELP g_events Events \\\"sealed\\\".\n# TYPE g_events counter\n\
                  g_events_total 3\n# HELP g_lat Latency.\n# TYPE g_lat histogram\n# UNIT g_lat seconds\n\
                  g_lat_bucket{le=\"+Inf\"} 1\ng_lat_sum 0.5\ng_lat_count 1\n\
                  # HELP g_build Build.\n# TYPE g_build info\ng_build_info{version=\"1\"} 1\n\
                  # HELP g_up Up.\n# TYPE g_up gauge\ng_up 1\n# EOF\n";
        let classic = openmetrics_to_classic(om);
        assert_eq!(
            classic,
            "# HELP g_events_total Events \"sealed\".\n# TYPE g_events_total counter\ng_events_total 3\n\
             # HELP g_lat Latency.\n# TYPE g_lat histogram\n\
             g_lat_bucket{le=\"+Inf\"} 1\ng_lat_sum 0.5\ng_lat_count 1\n\
             # HELP g_build_info Build.\n# TYPE g_build_info gauge\ng_build_info{version=\"1\"} 1\n\
             # HELP g_up Up.\n# TYPE g_up gauge\ng_up 1\n"
        );
    }
}
