//! A `drill --report` file read as its readers read it: the HTML page by a browser's parser
//! (html5ever, through scraper), the SVG as the XML it is (roxmltree). Either way it must hold
//! the three charts, each series' legend entry and the fault marker on every chart.

use std::path::Path;

/// What every report shows, per chart: its title, its series' legend entries.
const CHARTS: [(&str, &str, &[&str]); 3] = [
    (
        "chart-requests",
        "Requests per second",
        &["ok (successful answers)", "failed (all kinds)"],
    ),
    (
        "chart-latency",
        "Latency of the requests sent each second",
        &["p50", "p95", "p99"],
    ),
    ("chart-failures", "Failed requests per second, by kind", &[]),
];

/// Checks the report at `path` (`.html` or `.svg`); returns every text it shows, in order.
pub fn assert_drill_report(path: &Path) -> Vec<String> {
    let content = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the drill report {}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "svg") {
        svg(&content)
    } else {
        html(&content)
    }
}

fn svg(content: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(content)
        .unwrap_or_else(|e| panic!("the SVG report is not XML: {e}\n{content}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_string())
        .collect();
    for (_, title, series) in CHARTS {
        assert!(
            texts.iter().any(|t| t == title),
            "no chart {title:?}: {texts:?}"
        );
        for s in series {
            assert!(texts.iter().any(|t| t == s), "no series {s:?}: {texts:?}");
        }
    }
    // The fault on each chart (its label) and in the legend of each (`fault +0.00 s`).
    let faults = texts.iter().filter(|t| *t == "fault").count();
    assert_eq!(faults, CHARTS.len(), "a fault marker per chart: {texts:?}");
    texts
}

fn html(content: &str) -> Vec<String> {
    let page = scraper::Html::parse_document(content);
    assert!(
        page.errors.is_empty(),
        "the HTML report does not parse cleanly: {:?}",
        page.errors
    );
    let select = |css: &str| scraper::Selector::parse(css).expect("a selector");
    let text_of = |e: scraper::ElementRef| e.text().collect::<String>().trim().to_string();
    assert!(
        page.select(&select("#verdict")).next().is_some(),
        "no verdict"
    );
    // Self-contained: nothing fetched from elsewhere.
    for external in ["script", "link", "img", "iframe"] {
        assert!(
            page.select(&select(external)).next().is_none(),
            "the page loads a <{external}>"
        );
    }
    let mut all = vec![];
    for (id, title, series) in CHARTS {
        let figure = page
            .select(&select(&format!("figure#{id} svg")))
            .next()
            .unwrap_or_else(|| panic!("no chart #{id} with an inline SVG"));
        let texts: Vec<String> = figure.select(&select("text")).map(text_of).collect();
        assert!(
            texts.iter().any(|t| t == title),
            "#{id}: no title: {texts:?}"
        );
        for s in series {
            assert!(
                texts.iter().any(|t| t == s),
                "#{id}: no series {s:?}: {texts:?}"
            );
        }
        assert!(
            texts.iter().any(|t| t == "fault"),
            "#{id}: no fault marker: {texts:?}"
        );
        all.extend(texts);
    }
    all.extend(page.select(&select("#figures tr")).map(text_of));
    all
}
